/** Raised when a state machine is asked for a move its transition table does not allow. */
export class InvalidStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidStateError';
  }
}

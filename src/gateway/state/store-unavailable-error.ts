/**
 * A state store operation that did not complete within its bound (the store is down, unreachable
 * or too slow). The HTTP API answers such failures with 503; writes never surface it (the
 * resilient store keeps them and writes them back).
 */
export class StoreUnavailableError extends Error {
  constructor(readonly operation: string, cause: string) {
    super(`state store unavailable (${operation}): ${cause}`);
    this.name = 'StoreUnavailableError';
  }
}

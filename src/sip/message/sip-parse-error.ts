import type { SipHeaders } from './sip-headers';

/**
 * A message that could not be parsed. `isRequest` and `headers` are set when the start line was a
 * request line and headers were readable, so the caller can still answer 400 Bad Request.
 */
export class SipParseError extends Error {
  constructor(
    message: string,
    readonly isRequest: boolean = false,
    readonly method: string | undefined = undefined,
    readonly headers: SipHeaders | undefined = undefined,
  ) {
    super(message);
    this.name = 'SipParseError';
  }
}

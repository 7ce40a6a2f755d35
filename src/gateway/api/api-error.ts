/** An API request refused with an HTTP status and a message (400s name the field at fault). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** extra JSON members of the error body (e.g. `owner` on a 409) */
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** 400 naming the field */
export function badField(field: string, problem: string): ApiError {
  return new ApiError(400, `${field}: ${problem}`, { field });
}

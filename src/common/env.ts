/** Reading configuration from the environment with defaults and clear errors. */
export function envString(name: string, fallback: string): string {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : v;
}

export function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`environment variable ${name}=${JSON.stringify(v)} is not a non-negative integer`);
  }
  return n;
}

/**
 * A set of limits, each read from its environment variable (`variables`, the default when unset) and each
 * required to be at least 1; `kind` names them in the error (`<kind> <name> must be at least 1 (got 0)`).
 */
export function positiveLimitsFromEnv<T extends { [K in keyof T]: number }>(kind: string, defaults: T, variables: Record<keyof T, string>): T {
  const limits = {} as Record<keyof T, number>;
  for (const name of Object.keys(variables) as (keyof T & string)[]) {
    limits[name] = envInt(variables[name], defaults[name]);
  }
  for (const [name, value] of Object.entries<number>(limits)) {
    if (value < 1) throw new Error(`${kind} ${name} must be at least 1 (got ${value})`);
  }
  return limits as T;
}

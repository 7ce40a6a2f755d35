/** Why a request's credentials were refused: a digest check failure, or the gateway's own checks. */
export type AuthFailureKind =
  | 'wrong-password'
  | 'unknown-user'
  | 'uri-mismatch'
  | 'replay'
  | 'wrong-realm'
  | 'unsupported'
  | 'bad-nc'
  /** a request refused because its source address or user is locked out */
  | 'locked-out';

/** The authentication counters behind /metrics: failures by kind, and lockouts started. */
export class AuthCounters {
  private readonly failures = new Map<AuthFailureKind, number>();
  lockouts = 0;

  failed(kind: AuthFailureKind): void {
    this.failures.set(kind, (this.failures.get(kind) ?? 0) + 1);
  }

  failuresOf(kind: AuthFailureKind): number {
    return this.failures.get(kind) ?? 0;
  }

  /** Prometheus text lines */
  render(): string[] {
    const lines = [
      '# HELP ferry_auth_failures_total SIP requests whose credentials this gateway refused, by kind (locked-out: refused during a lockout).',
      '# TYPE ferry_auth_failures_total counter',
    ];
    const kinds = [...this.failures].sort(([a], [b]) => a.localeCompare(b));
    if (kinds.length === 0) lines.push('ferry_auth_failures_total 0');
    for (const [kind, n] of kinds) lines.push(`ferry_auth_failures_total{kind="${kind}"} ${n}`);
    lines.push(
      '# HELP ferry_auth_lockouts_total Source addresses or users locked out after too many authentication failures.',
      '# TYPE ferry_auth_lockouts_total counter',
      `ferry_auth_lockouts_total ${this.lockouts}`,
    );
    return lines;
  }
}

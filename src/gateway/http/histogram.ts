/**
 * A Prometheus histogram (cumulative `_bucket{le=…}`, `_sum`, `_count`) with fixed upper bounds,
 * optionally split by one label. Observations of NaN or negative values are ignored; the number of
 * label values is capped (further values are counted under `other`) so a bad caller cannot grow it.
 */
export class Histogram {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  private static readonly MAX_SERIES = 16;

  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly bounds: readonly number[],
    private readonly label?: string,
  ) {}

  observe(value: number, labelValue = ''): void {
    if (!Number.isFinite(value) || value < 0) return;
    let key = this.label ? labelValue.replace(/[^A-Za-z0-9_.-]/g, '_') : '';
    if (!this.series.has(key) && this.series.size >= Histogram.MAX_SERIES) key = 'other';
    let s = this.series.get(key);
    if (!s) {
      s = { counts: this.bounds.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    this.bounds.forEach((b, i) => {
      if (value <= b) s!.counts[i]!++;
    });
    s.sum += value;
    s.count++;
  }

  /** total observations (all label values) */
  get count(): number {
    let n = 0;
    for (const s of this.series.values()) n += s.count;
    return n;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    // an empty histogram still shows its series (so dashboards and scrapes find the metric)
    const zero = { counts: this.bounds.map(() => 0), sum: 0, count: 0 };
    const entries = this.series.size > 0 ? [...this.series].sort(([a], [b]) => a.localeCompare(b)) : [['', zero] as [string, typeof zero]];
    for (const [key, s] of entries) {
      const own = this.label && key ? `${this.label}="${key}"` : '';
      const withLe = (le: string): string => `{${own ? `${own},` : ''}le="${le}"}`;
      this.bounds.forEach((b, i) => lines.push(`${this.name}_bucket${withLe(String(b))} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket${withLe('+Inf')} ${s.count}`);
      const plain = own ? `{${own}}` : '';
      lines.push(`${this.name}_sum${plain} ${Number(s.sum.toFixed(6))}`, `${this.name}_count${plain} ${s.count}`);
    }
    return lines;
  }
}

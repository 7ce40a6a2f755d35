/**
 * What a soak run does: how many concurrent calls, for how long, from which seed, and the timers
 * the injected faults are sized against. `npm run soak -- --calls N --minutes M --seed S`.
 */
export const FAULT_KINDS = ['mute', 'hold', 'blip', 'cable-pull', 'gateway-kill', 'media-kill', 'redis-restart'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface SoakOptions {
  /** concurrent calls kept going */
  calls: number;
  /** how long calls are placed and faults injected (then every call is hung up and leaks are counted) */
  durationMs: number;
  seed: number;
  /** FERRY_MEDIA_DEAD_MS: no RTP and no RTCP this long ends a leg (cable pulls last longer, blips and mutes shorter) */
  deadMs: number;
  /** a blip's length (all of one phone's packets dropped) */
  blipMs: number;
  /** mean time between two injected faults */
  faultEveryMs: number;
  /** a call lasts a seeded random time in [min, max] before one party hangs up */
  callMinMs: number;
  callMaxMs: number;
  /** the phones' RTCP SR interval */
  rtcpIntervalMs: number;
  /** how long a killed gateway / media server / Redis stays down before it is restarted */
  downMs: number;
  /** FERRY_SIP_ORPHAN_DIALOG_MS for the run */
  orphanDialogMs: number;
  /** how the stack runs: `start` = one `ferry start` (private Redis, its supervisor restores killed parts); `parts` = the three processes and a Redis started by the soak */
  via: 'start' | 'parts';
  /** kinds to inject (default: all) */
  kinds: FaultKind[];
  /** progress lines (default: none) */
  log?: (line: string) => void;
}

export function defaultOptions(overrides: Partial<SoakOptions> = {}): SoakOptions {
  return {
    calls: 10,
    durationMs: 60_000,
    seed: 1,
    deadMs: 15_000,
    blipMs: 5_000,
    faultEveryMs: 20_000,
    callMinMs: 20_000,
    callMaxMs: 120_000,
    rtcpIntervalMs: 5_000,
    downMs: 1_000,
    orphanDialogMs: 30_000,
    via: 'start',
    kinds: [...FAULT_KINDS],
    ...overrides,
  };
}

export function parseSoakArgs(argv: string[]): SoakOptions {
  const o: Partial<SoakOptions> = {};
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]!;
    const value = argv[i + 1];
    const num = (): number => {
      const n = Number(value);
      if (value === undefined || !Number.isFinite(n) || n < 0) throw new Error(`${name}: a non-negative number is required`);
      i++;
      return n;
    };
    switch (name) {
      case '--calls': o.calls = Math.max(1, Math.round(num())); break;
      case '--minutes': o.durationMs = Math.round(num() * 60_000); break;
      case '--seconds': o.durationMs = Math.round(num() * 1000); break;
      case '--seed': o.seed = Math.round(num()); break;
      case '--dead-ms': o.deadMs = num(); break;
      case '--blip-ms': o.blipMs = num(); break;
      case '--fault-every-ms': o.faultEveryMs = num(); break;
      case '--call-min-ms': o.callMinMs = num(); break;
      case '--call-max-ms': o.callMaxMs = num(); break;
      case '--rtcp-interval-ms': o.rtcpIntervalMs = num(); break;
      case '--down-ms': o.downMs = num(); break;
      case '--orphan-dialog-ms': o.orphanDialogMs = num(); break;
      case '--via':
        if (value !== 'start' && value !== 'parts') throw new Error('--via: start or parts');
        o.via = value;
        i++;
        break;
      case '--kinds': {
        if (!value) throw new Error('--kinds: a comma-separated list is required');
        const kinds = value.split(',').map((k) => k.trim());
        const bad = kinds.filter((k) => !(FAULT_KINDS as readonly string[]).includes(k));
        if (bad.length) throw new Error(`--kinds: unknown ${bad.join(', ')} (known: ${FAULT_KINDS.join(', ')})`);
        o.kinds = kinds as FaultKind[];
        i++;
        break;
      }
      default:
        throw new Error(`unknown option ${name} (known: --calls --minutes --seconds --seed --dead-ms --blip-ms --fault-every-ms --call-min-ms --call-max-ms --rtcp-interval-ms --down-ms --orphan-dialog-ms --via --kinds)`);
    }
  }
  const options = defaultOptions(o);
  if (options.blipMs >= options.deadMs - 1000) throw new Error(`--blip-ms (${options.blipMs}) must stay at least 1 s under --dead-ms (${options.deadMs}): a blip must not end a call`);
  if (options.callMaxMs < options.callMinMs) throw new Error('--call-max-ms must be >= --call-min-ms');
  return options;
}

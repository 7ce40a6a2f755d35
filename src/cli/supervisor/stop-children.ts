import { envInt } from '../../common/env';
import { DEFAULT_SHUTDOWN_WATCHDOG_MS } from '../../common/process-runner';
import type { SupervisedChild } from './child-process-supervisor';

/** Margin kept between the last SIGKILL and the supervisor's own shutdown watchdog. */
const WATCHDOG_MARGIN_MS = 200;

/** The time children get to stop under a supervisor whose shutdown watchdog is `watchdogMs`. */
export function childStopBudgetMs(watchdogMs: number): number {
  return watchdogMs - WATCHDOG_MARGIN_MS;
}

/**
 * Stops supervised children group by group (e.g. the gateway, then the engines, then the store),
 * the members of a group together, within one budget: the supervisor's shutdown watchdog
 * (FERRY_SHUTDOWN_WATCHDOG_MS) minus a margin. Each group gets an equal share of what is left
 * as its SIGTERM grace before SIGKILL, so the whole tree is gone before the watchdog fires.
 */
export async function stopChildrenInOrder(
  groups: SupervisedChild[][],
  budgetMs = childStopBudgetMs(envInt('FERRY_SHUTDOWN_WATCHDOG_MS', DEFAULT_SHUTDOWN_WATCHDOG_MS)),
): Promise<void> {
  const deadline = Date.now() + Math.max(100, budgetMs);
  const nonEmpty = groups.filter((g) => g.length > 0);
  for (let i = 0; i < nonEmpty.length; i++) {
    const graceMs = Math.max(50, Math.floor((deadline - Date.now()) / (nonEmpty.length - i)));
    await Promise.all(nonEmpty[i].map((c) => c.stop(graceMs).catch(() => undefined)));
  }
}

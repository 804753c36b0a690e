import type { SagaAction, SagaState } from '@flexmig/saga';
import { completionFigures } from '../figures';
import { migrationDowntime, migrationDuration, migrationsByState, migrationsFinished, outboxBacklog, outboxDeadLettered, stepDuration } from '../metrics';

/** Step and outcome figures for /metrics, from what the saga just decided. */
export function observeTransition(state: SagaState, actions: SagaAction[]): void {
  for (const a of actions) {
    if (a.kind === 'publish' && a.type === 'migration.step-completed') {
      stepDuration.observe({ step: String(a.data.stepName) }, Number(a.data.durationMs) / 1000);
    } else if (a.kind === 'finish') {
      migrationsFinished.inc({ outcome: a.outcome });
      if (a.outcome === 'completed') {
        const f = completionFigures(state);
        migrationDuration.observe(f.totalTimeMs / 1000);
        migrationDowntime.observe(f.downtimeMs / 1000);
      }
    }
  }
}

/** The gauges sampled on every reconcile tick. */
export function setGauges(byState: { state: string; n: number }[], backlog: { waiting: number; deadLettered: number }): void {
  migrationsByState.reset();
  for (const st of ['queued', 'created', 'running', 'compensating']) migrationsByState.set({ state: st }, byState.find((r) => r.state === st)?.n ?? 0);
  outboxBacklog.set(backlog.waiting);
  outboxDeadLettered.set(backlog.deadLettered);
}

import { Inject, Injectable } from '@nestjs/common';
import { ErrorBodySchema, type EvacuationView, FlexmigError, type MigrationView } from '@flexmig/contracts';
import { CONSOLE_CONFIG, type ConsoleConfig } from '../config';
import { serviceUnreachable } from '../routing/service-errors';

/**
 * The migration or evacuation a live stream is asked for, from the scheduler's HTTP API with the caller's
 * own Authorization header (so the scheduler's checks apply): an unknown id is its 404, not an empty
 * stream that never ends; `createdAt` bounds how far back the events stream is read, and an evacuation's
 * items name the migrations to follow.
 */
@Injectable()
export class SchedulerLookup {
  constructor(@Inject(CONSOLE_CONFIG) private readonly config: ConsoleConfig) {}

  migration(id: string, authorization: string | undefined): Promise<Pick<MigrationView, 'id' | 'createdAt'>> {
    return this.get(`/api/v1/migrations/${encodeURIComponent(id)}`, authorization);
  }

  evacuation(id: string, authorization: string | undefined): Promise<Pick<EvacuationView, 'id' | 'createdAt' | 'vms'>> {
    return this.get(`/api/v1/evacuations/${encodeURIComponent(id)}`, authorization);
  }

  private async get<T>(path: string, authorization: string | undefined): Promise<T> {
    const base = new URL(this.config.services.scheduler);
    let res: Response;
    try {
      res = await fetch(new URL(path, base), { headers: authorization ? { authorization } : {}, signal: AbortSignal.timeout(this.config.proxyTimeoutMs) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      throw serviceUnreachable('scheduler', base, cause);
    }
    const body: unknown = await res.json().catch(() => undefined);
    if (res.ok) return body as T;
    const error = ErrorBodySchema.safeParse(body);
    throw error.success ? FlexmigError.fromBody(error.data) : serviceUnreachable('scheduler', base, `it answered ${res.status}`);
  }
}

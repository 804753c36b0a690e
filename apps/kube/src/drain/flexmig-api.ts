import { readFileSync } from 'node:fs';
import { type EvacuationView, EvacuationViewSchema } from '@flexmig/contracts';

/** A refusal or failure of a flexmig API call, with its status and the service's message. */
export class FlexmigApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/**
 * The flexmig HTTP API as the drain watcher uses it: evacuations (scheduler) and host maintenance
 * (inventory), with one operator token. The token file is read on every call (a rotated Secret applies).
 */
export class FlexmigApi {
  constructor(
    private readonly schedulerUrl: string,
    private readonly inventoryUrl: string,
    private readonly tokenFile: string,
  ) {}

  /** POST /api/v1/evacuations; a host already being evacuated answers 409 with the running evacuation's id. */
  async evacuate(hostId: string): Promise<EvacuationView> {
    return EvacuationViewSchema.parse(await this.call(this.schedulerUrl, 'POST', '/api/v1/evacuations', { hostId }));
  }

  async evacuation(id: string): Promise<EvacuationView> {
    return EvacuationViewSchema.parse(await this.call(this.schedulerUrl, 'GET', `/api/v1/evacuations/${encodeURIComponent(id)}`));
  }

  async setMaintenance(hostId: string, maintenance: boolean): Promise<void> {
    await this.call(this.inventoryUrl, 'PUT', `/api/v1/hosts/${encodeURIComponent(hostId)}/maintenance`, { maintenance });
  }

  private async call(base: string, method: string, route: string, body?: unknown): Promise<unknown> {
    const token = readFileSync(this.tokenFile, 'utf8').trim();
    let res: Response;
    try {
      res = await fetch(new URL(route, base), {
        method,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (e) {
      throw new FlexmigApiError(0, `${method} ${base}${route} did not answer: ${(e as Error).message}`);
    }
    const text = await res.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      /* text */
    }
    if (!res.ok) {
      const err = json as { message?: string; details?: Record<string, unknown> };
      throw new FlexmigApiError(res.status, `${method} ${route} answered ${res.status}: ${err?.message ?? text}`, err?.details);
    }
    return json;
  }
}

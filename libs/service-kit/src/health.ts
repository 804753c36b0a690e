import { Controller, Get, Header, Inject, Injectable, Module, Optional } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { collectDefaultMetrics, register } from 'prom-client';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { Public } from './auth/roles';

/** A named readiness check; modules provide them under READINESS_CHECKS. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<boolean>;
}
export const READINESS_CHECKS = Symbol('READINESS_CHECKS');

@Injectable()
export class ReadinessRegistry {
  private readonly checks: ReadinessCheck[] = [];
  add(check: ReadinessCheck): void {
    this.checks.push(check);
  }
  async run(): Promise<Record<string, 'up' | 'down'>> {
    const results = await Promise.all(
      this.checks.map(async (c) => [c.name, (await c.check().catch(() => false)) ? 'up' : 'down'] as const),
    );
    return Object.fromEntries(results);
  }
}

@ApiExcludeController()
@Controller()
export class HealthController {
  constructor(
    private readonly readiness: ReadinessRegistry,
    @Optional() @Inject(READINESS_CHECKS) provided?: ReadinessCheck[],
  ) {
    for (const c of provided ?? []) readiness.add(c);
  }

  // Open: probes and scrapers carry no token, and none of these says more than up/down and counters.
  @Get('health/live')
  @Public()
  live() {
    return { status: 'ok' };
  }

  @Get('health/ready')
  @Public()
  async ready() {
    const checks = await this.readiness.run();
    const ok = Object.values(checks).every((s) => s === 'up');
    if (!ok) {
      const down = Object.keys(checks).filter((name) => checks[name] !== 'up');
      throw new FlexmigError(ErrorCode.Unavailable, `not ready: ${down.join(', ')} down`, { status: 'not-ready', checks });
    }
    return { status: 'ready', checks };
  }

  @Get('metrics')
  @Public()
  @Header('Content-Type', register.contentType)
  async metrics() {
    return register.metrics();
  }
}

let defaultsCollected = false;

@Module({ controllers: [HealthController], providers: [ReadinessRegistry], exports: [ReadinessRegistry] })
export class HealthModule {
  constructor() {
    if (!defaultsCollected) {
      collectDefaultMetrics();
      defaultsCollected = true;
    }
  }
}

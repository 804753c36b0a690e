import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { SCHEDULER_CONFIG, SchedulerConfig } from '../config';
import { SLOT_FREED_CHANNEL } from '../store/migration-store';
import { Admission } from './admission.service';

/** A lost listening connection is opened again after this; meanwhile the reconcile tick dispatches. */
const reconnectMs = 1_000;

/**
 * Hears, on its own PostgreSQL connection (LISTEN), every replica's notification that a migration ended
 * (SLOT_FREED_CHANNEL, sent in the commit of that end), and lets admission start what waits for the
 * freed slots at once instead of at the next reconcile tick. This replica's own ends are left out: the
 * engine tells admission of those directly. Lossy by design: a notification missed while the connection
 * is down costs at most one tick.
 */
@Injectable()
export class SlotListener implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('admission');
  private client?: Client;
  private stopped = false;
  private timer?: NodeJS.Timeout;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly admission: Admission,
    @Inject(SCHEDULER_CONFIG) private readonly config: SchedulerConfig,
  ) {}

  onApplicationBootstrap(): void {
    void this.listen();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.client?.end().catch(() => undefined);
  }

  private async listen(): Promise<void> {
    if (this.stopped) return;
    const url = (this.db.options as { url?: string }).url;
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    this.client = client;
    let lost = false;
    const again = (why: string) => {
      if (lost || this.stopped) return;
      lost = true;
      this.log.warn(`not listening for freed admission slots (${why}); retrying in ${reconnectMs} ms, the reconcile tick dispatches meanwhile`);
      void client.end().catch(() => undefined);
      this.timer = setTimeout(() => void this.listen(), reconnectMs);
    };
    client.on('error', (e) => again(e.message));
    client.on('end', () => again('the connection ended'));
    client.on('notification', (n) => {
      if (n.channel === SLOT_FREED_CHANNEL && n.payload !== this.config.schedulerId) this.admission.slotFreed();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${SLOT_FREED_CHANNEL}`);
    } catch (e) {
      again((e as Error).message);
    }
  }
}

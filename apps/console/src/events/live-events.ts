import { Injectable, Logger } from '@nestjs/common';
import { DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import { nuid, type Subscription } from '@nats-io/transport-node';
import { type CloudEvent, CloudEventSchema, eventsSubjectRoot, MigrationProgressMessage, type MigrationProgress, PROGRESS_EVENT_TYPE, progressMatchesSubject } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { consoleConsumerPrefix } from '@flexmig/nats-auth';

/** One message of a live stream: a CloudEvent with its JetStream sequence, or a progress sample (no id). */
export type LiveEvent = { id: string; type: string; data: CloudEvent } | { id?: undefined; type: typeof PROGRESS_EVENT_TYPE; data: MigrationProgress };

export interface LiveSelection {
  /** Events: the one JetStream filter subject (nats-server 2.9 has no filter lists), then `keep` on each. */
  family?: string;
  keep(event: CloudEvent): boolean;
  /** Progress samples: of these migrations, of every migration (`*`), or none (undefined). */
  progressOf?: readonly string[] | '*';
  /** Resume after this stream sequence (Last-Event-ID); without it, the events since `replay`, or only new ones. */
  afterSeq?: number;
  replay: Date | 'new';
}

/** A running subscription; `stop` ends it and frees what it holds on the server. */
export interface LiveSubscription {
  stop(): Promise<void>;
}

/**
 * The NATS side of the live streams. Events come from the events stream through an ordered consumer of
 * its own per stream (ephemeral, in memory, no acks), started after the client's Last-Event-ID, so a
 * reconnect gets exactly the later events. Progress samples come from core NATS, where the agents publish
 * them: they are not stored anywhere, so they are not resumable (a reconnect gets the next sample).
 */
@Injectable()
export class LiveEvents {
  private readonly log = new Logger('live-events');

  constructor(private readonly bus: NatsBus) {}

  async open(selection: LiveSelection, deliver: (event: LiveEvent) => void, failed: (why: string) => void): Promise<LiveSubscription> {
    const js = await this.bus.jetstream();
    const filter = `${this.bus.prefix}.${eventsSubjectRoot}.${selection.family ? `${selection.family}.>` : '>'}`;
    const consumer = await js.consumers.get(this.bus.eventsStream, {
      name_prefix: `${consoleConsumerPrefix}_${nuid.next()}`,
      filter_subjects: filter,
      // gone 30 s after its stream stopped asking, even if the stop below never ran (a console crash)
      inactive_threshold: 30_000,
      ...(selection.afterSeq !== undefined
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: selection.afterSeq + 1 }
        : selection.replay === 'new'
          ? { deliver_policy: DeliverPolicy.New }
          : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: selection.replay.toISOString() }),
    });
    const messages = await consumer.consume({ max_messages: 256 });
    void (async () => {
      try {
        for await (const m of messages) this.event(m, selection, deliver);
      } catch (e) {
        failed(`the events stream stopped: ${(e as Error).message}`);
      }
    })();
    let progress: Subscription | undefined;
    const of = selection.progressOf;
    if (of !== undefined) {
      // one migration: its subject alone; several or all: every migration's, sorted out here
      const params: Record<string, string> = of !== '*' && of.length === 1 ? { migrationId: of[0] } : {};
      const wanted = of === '*' ? undefined : new Set(of);
      progress = this.bus.subscribe(
        MigrationProgressMessage,
        (sample, subject) => {
          // a sample counts only as its subject's (NATS permissions vouch for that, not for the body)
          if (!progressMatchesSubject(subject, sample)) return;
          if (!wanted || wanted.has(sample.migrationId)) deliver({ type: PROGRESS_EVENT_TYPE, data: sample });
        },
        { params },
      );
      // the server has the subscription before the client hears that its stream is open
      await this.bus.nc.flush();
    }
    return {
      stop: async () => {
        progress?.unsubscribe();
        await messages.close().catch(() => undefined);
        await consumer.delete().catch(() => undefined);
      },
    };
  }

  private event(m: JsMsg, selection: LiveSelection, deliver: (event: LiveEvent) => void): void {
    let parsed: ReturnType<typeof CloudEventSchema.safeParse>;
    try {
      parsed = CloudEventSchema.safeParse(m.json());
    } catch {
      this.log.warn(`skipped event ${m.seq} on ${m.subject}: not JSON`);
      return;
    }
    if (!parsed.success) {
      this.log.warn(`skipped event ${m.seq} on ${m.subject}: not a CloudEvent (${parsed.error.message})`);
      return;
    }
    const event = parsed.data as CloudEvent;
    if (selection.keep(event)) deliver({ id: String(m.seq), type: event.type, data: event });
  }
}

#!/usr/bin/env node
// An example subscriber of flexmig's events: a durable JetStream consumer that reads the events stream,
// handles each CloudEvent, acknowledges it, and after a restart carries on after the last event it
// acknowledged (the server keeps the consumer's position; docs/events.md, "Replay").
//
//   NATS_URL=nats://127.0.0.1:4222 node examples/events-consumer.mjs [--durable NAME] [--types migration.>,host.down]
//
// Environment: NATS_URL (default nats://127.0.0.1:4222), SUBJECT_PREFIX (default flexmig), NATS_CREDS (a
// credentials file, when NATS requires identities: `flexmig auth init` writes .flexmig/auth/subscriber.creds,
// whose permissions allow reading the events stream through the one durable named `subscriber`; see
// docs/security.md), NATS_TLS_CA. Options: --durable (the consumer's name, default `subscriber`: one name
// per subscriber application, which its replicas share), --types (event types to receive, comma-separated,
// NATS wildcards allowed; default all). It prints one JSON line per event on stdout and stops on SIGINT or
// SIGTERM after the event in hand is acknowledged.
//
// Outside this repository: npm install @nats-io/transport-node @nats-io/jetstream.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { connect, credsAuthenticator } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager } from '@nats-io/jetstream';

const { values: args } = parseArgs({ options: { durable: { type: 'string', default: 'subscriber' }, types: { type: 'string', default: '>' } } });
const url = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const prefix = process.env.SUBJECT_PREFIX ?? 'flexmig';
// the stream flexmig's services create at start (libs/messaging: <PREFIX>_EVENTS on <prefix>.events.>)
const stream = `${prefix.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_EVENTS`;
const subjects = args.types.split(',').map((t) => `${prefix}.events.${t.trim()}`);

const nc = await connect({
  servers: url,
  name: `flexmig-example-${args.durable}`,
  maxReconnectAttempts: -1,
  // the subscriber identity may read replies only on its own inbox prefix
  ...(process.env.NATS_CREDS ? { authenticator: credsAuthenticator(readFileSync(process.env.NATS_CREDS)), inboxPrefix: '_INBOX.subscriber' } : {}),
  ...(process.env.NATS_TLS_CA ? { tls: { caFile: process.env.NATS_TLS_CA } } : {}),
}).catch((e) => {
  console.error(`cannot reach NATS at ${url}: ${e.message}. Set NATS_URL to flexmig's NATS server.`);
  process.exit(1);
});

// The durable consumer: created the first time (from the oldest event the stream keeps), found again after a
// restart. Explicit acks: an event not acknowledged within ack_wait is delivered again, so a crash between
// handling and ack means handling it twice, never losing it; a subscriber de-duplicates on the CloudEvents id.
const jsm = await jetstreamManager(nc);
const config = {
  durable_name: args.durable,
  ack_policy: AckPolicy.Explicit,
  deliver_policy: DeliverPolicy.All,
  ack_wait: 30_000_000_000, // 30 s, in nanoseconds
  max_deliver: 10,
  ...(subjects.length === 1 ? { filter_subject: subjects[0] } : { filter_subjects: subjects }),
};
try {
  await jsm.consumers.info(stream, args.durable);
} catch (e) {
  if (!(e instanceof JetStreamApiError && e.code === JetStreamApiCodes.ConsumerNotFound)) {
    console.error(`the events stream ${stream} cannot be read (${e.message}): has a flexmig service started with SUBJECT_PREFIX=${prefix}?`);
    process.exit(1);
  }
  await jsm.consumers.add(stream, config);
}

const consumer = await jetstream(nc).consumers.get(stream, args.durable);
const messages = await consumer.consume({ max_messages: 64 });
// Stopping while events are buffered (pulled, not yet handled) leaves them unacknowledged: they come again
// after ack_wait, to this consumer or to a replica sharing the durable.
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    stopping = true;
    void messages.close();
  });
}
console.error(`consuming ${subjects.join(', ')} from ${stream} as durable ${args.durable}`);

for await (const m of messages) {
  const event = m.json();
  handle(event, m.info.streamSequence, m.info.deliveryCount);
  // ackAck waits for the server to record the ack: once it resolves, a restart resumes after this event
  await m.ackAck();
  if (stopping) break;
}
await nc.drain();

/** What a subscriber does with an event: here, print it (type, id, subject, data) as one JSON line. */
function handle(event, sequence, deliveries) {
  process.stdout.write(`${JSON.stringify({ sequence, deliveries, type: event.type, id: event.id, subject: event.subject, time: event.time, data: event.data })}\n`);
}

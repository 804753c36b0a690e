import { Init1764130000000 } from './1764130000000-init';
import { QueueAndClusterSettings1764135000000 } from './1764135000000-queue-and-cluster-settings';
import { Evacuations1764140000000 } from './1764140000000-evacuations';
import { SagaAsJson1764160000000 } from './1764160000000-saga-as-json';
import { OutboxDeadLetter1764170000000 } from './1764170000000-outbox-dead-letter';
import { RequestedBy1764180000000 } from './1764180000000-requested-by';
import { DueAt1764190000000 } from './1764190000000-due-at';
import { MigrationResolutions1764195000000 } from './1764195000000-migration-resolutions';
import { TraceParent1764200000000 } from './1764200000000-trace-parent';
import { Prediction1764210000000 } from './1764210000000-prediction';
import { CompletedIndex1764220000000 } from './1764220000000-completed-index';
import { OutboxWriter1764230000000 } from './1764230000000-outbox-writer';
import { ListOrder1764240000000 } from './1764240000000-list-order';
import { Measured1764250000000 } from './1764250000000-measured';

/** In order. Never edit one that has shipped: add the next. */
export const schedulerMigrations = [
  Init1764130000000,
  QueueAndClusterSettings1764135000000,
  Evacuations1764140000000,
  SagaAsJson1764160000000,
  OutboxDeadLetter1764170000000,
  RequestedBy1764180000000,
  DueAt1764190000000,
  MigrationResolutions1764195000000,
  TraceParent1764200000000,
  Prediction1764210000000,
  CompletedIndex1764220000000,
  OutboxWriter1764230000000,
  ListOrder1764240000000,
  Measured1764250000000,
];

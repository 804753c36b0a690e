/** What `query-migrate` answers (the fields flexmig reads; reference/qemu-migration.md §1) and its final states. */
export interface MigrateInfo {
  status: string;
  'total-time'?: number;
  'expected-downtime'?: number;
  downtime?: number;
  'setup-time'?: number;
  'cpu-throttle-percentage'?: number;
  'error-desc'?: string;
  'socket-address'?: Array<{ type: string; host?: string; port?: string }>;
  ram?: {
    transferred: number;
    remaining: number;
    total: number;
    'dirty-pages-rate': number;
    mbps: number;
    'dirty-sync-count': number;
    'page-size': number;
    /** Bytes sent while the guest was stopped (7.2). */
    'downtime-bytes'?: number;
  };
}

/** The states a stream does not leave. */
export const FINAL = new Set(['completed', 'failed', 'cancelled']);

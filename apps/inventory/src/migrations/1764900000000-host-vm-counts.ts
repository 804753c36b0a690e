import { MigrationInterface, QueryRunner } from 'typeorm';
import { HostAllocations1764600000000 } from './1764600000000-host-allocations';

/**
 * `host_allocations.vms`: how many VMs each host has, in every state, kept by the same statement-level
 * triggers as what it holds (issue 11: a list of hosts showed each one's VMs by reading every VM of the
 * fleet, 10,500 at 1,000 hosts; counting them per page row was 10 ms more for a page of 1,000 hosts, a heap
 * fetch per VM). A VM counts wherever its `host_id` says, whatever its state; a reservation counts nothing
 * (the VM is not there yet). The triggers' functions are replaced, not their triggers: each statement's
 * change carries the count beside memory and vCPUs, and a host whose three totals do not change is not
 * touched (a VM starting → running, as before). The counters are rebuilt from the rows with writers of
 * `vms` and `reservations` held off until the commit, so that no change is counted twice or lost.
 */
export class HostVmCounts1764900000000 implements MigrationInterface {
  name = 'HostVmCounts1764900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('LOCK TABLE vms, reservations IN SHARE MODE');
    await q.query('ALTER TABLE host_allocations ADD COLUMN vms int NOT NULL DEFAULT 0');
    await q.query(`CREATE OR REPLACE FUNCTION host_allocations_rebuild() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
      BEGIN
        DELETE FROM host_allocations;
        ${FILL};
        RETURN NULL;
      END $$`);
    for (const t of TABLES) {
      await q.query(`CREATE OR REPLACE FUNCTION ${t.table}_held_change() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
        DECLARE below bigint;
        BEGIN
          IF TG_OP = 'INSERT' THEN ${apply(`SELECT ${t.change('new_rows', '')}`)}
          ELSIF TG_OP = 'DELETE' THEN ${apply(`SELECT ${t.change('old_rows', '-')}`)}
          ELSE ${apply(`SELECT ${t.change('new_rows', '')} UNION ALL SELECT ${t.change('old_rows', '-')}`)}
          END IF;
          IF below > 0 THEN
            RAISE EXCEPTION 'host_allocations: a host would hold less than nothing after this change to %', TG_TABLE_NAME;
          END IF;
          RETURN NULL;
        END $$`);
    }
    await q.query('DELETE FROM host_allocations');
    await q.query(FILL);
  }

  /** Back to the counters without `vms`: the table as the migration before makes it, filled from the rows again. */
  async down(q: QueryRunner): Promise<void> {
    const before = new HostAllocations1764600000000();
    await before.down(q);
    await before.up(q);
  }
}

/** Every host's totals and VM count, from the rows (capacity.ts `HELD_BY_HOST_SQL` as it stood when this was written). */
const FILL = `INSERT INTO host_allocations (host_id, memory_mib, vcpus, vms)
  SELECT host_id, sum(memory_mib), sum(vcpus), sum(vms) FROM (
    SELECT host_id, CASE WHEN state IN ('starting', 'running') THEN memory_mib ELSE 0 END, CASE WHEN state IN ('starting', 'running') THEN vcpus ELSE 0 END, 1 FROM vms
    UNION ALL SELECT host_id, memory_mib, vcpus, 0 FROM reservations) held(host_id, memory_mib, vcpus, vms)
  GROUP BY host_id ORDER BY host_id`;

/** The tables whose rows a host holds or has: each row's share, `sign` '-' for the rows a statement took away. */
const TABLES = [
  {
    table: 'vms',
    change: (rows: string, sign: string) =>
      `host_id, ${sign}CASE WHEN state IN ('starting', 'running') THEN memory_mib ELSE 0 END, ${sign}CASE WHEN state IN ('starting', 'running') THEN vcpus ELSE 0 END, ${sign}1 FROM ${rows}`,
  },
  { table: 'reservations', change: (rows: string, sign: string) => `host_id, ${sign}memory_mib, ${sign}vcpus, 0 FROM ${rows}` },
] as const;

/**
 * Adds the per-host totals of `changes` (rows of host_id, memory, vCPUs, VMs) to the counters, in host id
 * order, skipping hosts whose totals do not change, and refuses a total below zero (as the migration before).
 */
const apply = (changes: string): string =>
  `WITH applied AS (
     INSERT INTO host_allocations AS a (host_id, memory_mib, vcpus, vms)
     SELECT host_id, sum(memory_mib), sum(vcpus), sum(vms) FROM (${changes}) c(host_id, memory_mib, vcpus, vms)
     GROUP BY host_id HAVING sum(memory_mib) <> 0 OR sum(vcpus) <> 0 OR sum(vms) <> 0 ORDER BY host_id
     ON CONFLICT (host_id) DO UPDATE SET memory_mib = a.memory_mib + excluded.memory_mib, vcpus = a.vcpus + excluded.vcpus, vms = a.vms + excluded.vms
     RETURNING a.memory_mib, a.vcpus, a.vms)
   SELECT count(*) INTO below FROM applied WHERE memory_mib < 0 OR vcpus < 0 OR vms < 0;`;

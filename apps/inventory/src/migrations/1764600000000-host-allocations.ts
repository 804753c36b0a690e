import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What each host holds, kept by PostgreSQL as its VMs and reservations change (issue 11: "cache what is
 * derived from a cluster's hosts, update it when they change"). Summing every VM and reservation of the
 * hosts asked for was 4 to 7 ms of a 1,000-host page at 10,000 VMs, and ran again for every placement
 * page and every VM creation (docs/scale.md).
 *
 * `host_allocations` has one row per host that has ever held something. Statement-level triggers on `vms`
 * and `reservations` add each statement's change to it, in the writing transaction: a reader sees the
 * counters and the rows they count in one snapshot, so they cannot disagree. What counts is capacity.ts's
 * one definition (VMs starting or running, and every reservation); `host_allocations_rebuild()` recomputes
 * it from scratch (after a TRUNCATE, and here to fill the table).
 *
 * The functions run with the schema they were created in (`SET search_path FROM CURRENT`), whoever's
 * session fires them: an operator's psql as much as the service.
 *
 * Locks: a statement's changes are applied in host id order, and a host whose total did not change (a VM
 * starting → running) is not touched. VM creation and step 1's reservation lock their host's row for
 * update, then its counter. Saga step 9 moves a VM between two hosts in one statement that fires two
 * triggers (the reservation's deletion: the target; the VM's move: both hosts): in which order PostgreSQL
 * fires them is not documented, and fired reservation first, two moves crossing between the same hosts
 * would lock the two counters in opposite orders. So step 9's statement first calls
 * `host_allocations_lock_for_move`: both host rows (key share, as the move's foreign key would), then both
 * counters, each in id order (vms.service.ts, `MOVE_VM_AND_RELEASE`). Counters first would deadlock
 * against a VM creation on the target, which holds the host's row and then needs its counter
 * (host-allocations.int.spec shows it).
 */
export class HostAllocations1764600000000 implements MigrationInterface {
  name = 'HostAllocations1764600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE host_allocations (
      host_id text PRIMARY KEY REFERENCES hosts(id) ON DELETE CASCADE,
      memory_mib int NOT NULL,
      vcpus int NOT NULL)`);
    await q.query(`CREATE FUNCTION host_allocations_rebuild() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
      BEGIN
        DELETE FROM host_allocations;
        ${FILL};
        RETURN NULL;
      END $$`);
    for (const t of TABLES) {
      await q.query(`CREATE FUNCTION ${t.table}_held_change() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
        DECLARE below bigint;
        BEGIN
          IF TG_OP = 'INSERT' THEN ${apply(`SELECT host_id, memory_mib, vcpus FROM new_rows WHERE ${t.held}`)}
          ELSIF TG_OP = 'DELETE' THEN ${apply(`SELECT host_id, -memory_mib, -vcpus FROM old_rows WHERE ${t.held}`)}
          ELSE ${apply(`SELECT host_id, memory_mib, vcpus FROM new_rows WHERE ${t.held}
                        UNION ALL SELECT host_id, -memory_mib, -vcpus FROM old_rows WHERE ${t.held}`)}
          END IF;
          IF below > 0 THEN
            RAISE EXCEPTION 'host_allocations: a host would hold less than nothing after this change to %', TG_TABLE_NAME;
          END IF;
          RETURN NULL;
        END $$`);
      await q.query(`CREATE TRIGGER ${t.table}_held_insert AFTER INSERT ON ${t.table} REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION ${t.table}_held_change()`);
      await q.query(`CREATE TRIGGER ${t.table}_held_update AFTER UPDATE ON ${t.table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION ${t.table}_held_change()`);
      await q.query(`CREATE TRIGGER ${t.table}_held_delete AFTER DELETE ON ${t.table} REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION ${t.table}_held_change()`);
      await q.query(`CREATE TRIGGER ${t.table}_held_truncate AFTER TRUNCATE ON ${t.table}
        FOR EACH STATEMENT EXECUTE FUNCTION host_allocations_rebuild()`);
    }
    await q.query(`CREATE FUNCTION host_allocations_lock_for_move(ids text[]) RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
      BEGIN
        PERFORM 1 FROM hosts WHERE id = ANY(ids) ORDER BY id FOR KEY SHARE;
        PERFORM 1 FROM host_allocations WHERE host_id = ANY(ids) ORDER BY host_id FOR UPDATE;
      END $$`);
    await q.query(FILL);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of TABLES) {
      for (const op of ['insert', 'update', 'delete', 'truncate']) await q.query(`DROP TRIGGER ${t.table}_held_${op} ON ${t.table}`);
      await q.query(`DROP FUNCTION ${t.table}_held_change()`);
    }
    await q.query('DROP FUNCTION host_allocations_lock_for_move(text[])');
    await q.query('DROP FUNCTION host_allocations_rebuild()');
    await q.query('DROP TABLE host_allocations');
  }
}

/** Every host's totals, from the rows (capacity.ts `HELD_BY_HOST_SQL` as it stood when this was written: a migration does not change). */
const FILL = `INSERT INTO host_allocations (host_id, memory_mib, vcpus)
  SELECT host_id, sum(memory_mib), sum(vcpus) FROM (
    SELECT host_id, memory_mib, vcpus FROM vms WHERE state IN ('starting', 'running')
    UNION ALL SELECT host_id, memory_mib, vcpus FROM reservations) held
  GROUP BY host_id ORDER BY host_id`;

/** The tables whose rows a host holds, and which of their rows count (capacity.ts `HELD_BY_HOST_SQL`). */
const TABLES = [
  { table: 'vms', held: `state IN ('starting', 'running')` },
  { table: 'reservations', held: 'true' },
] as const;

/**
 * Adds the per-host totals of `changes` (rows of host_id, memory, vCPUs) to the counters, in host id order
 * (two statements that touch the same hosts lock them in the same order), skipping hosts whose total is
 * zero, and refuses a total below zero (a CHECK constraint cannot say it: PostgreSQL checks the row an
 * `INSERT … ON CONFLICT` proposes, the bare change, before it finds the conflict).
 */
const apply = (changes: string): string =>
  `WITH applied AS (
     INSERT INTO host_allocations AS a (host_id, memory_mib, vcpus)
     SELECT host_id, sum(memory_mib), sum(vcpus) FROM (${changes}) c(host_id, memory_mib, vcpus)
     GROUP BY host_id HAVING sum(memory_mib) <> 0 OR sum(vcpus) <> 0 ORDER BY host_id
     ON CONFLICT (host_id) DO UPDATE SET memory_mib = a.memory_mib + excluded.memory_mib, vcpus = a.vcpus + excluded.vcpus
     RETURNING a.memory_mib, a.vcpus)
   SELECT count(*) INTO below FROM applied WHERE memory_mib < 0 OR vcpus < 0;`;

import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Heartbeats write a host's row in place (docs/scale.md, "Heartbeats write in place"). Every beat of every
 * host updates its row (`last_heartbeat_at`, 500 rows a second at 1,000 hosts), and a row is 1–2 KB:
 *
 * - `fillfactor = 50` leaves half of each page free, so that the new version of a row fits in its page and
 *   the update is heap-only (HOT): no index entry, and the page's old versions are pruned as it goes. On
 *   full pages most updates were not: 300,000 beats grew a table of 1,000 hosts from about 330 pages to
 *   9,600–21,500 (75–168 MiB) faster than autovacuum took it back, and every read of many hosts (a page of
 *   the list, placement's list) read those pages.
 * - `cpu_feature_set`, the digest of the feature list, is kept by a trigger on the statements that set the
 *   list, not as a generated column: PostgreSQL computes a stored generated column again on every update of
 *   the row, whichever columns it sets, so each beat printed the 1 KB list as text and hashed it.
 *
 * Rows already in full pages move to pages with room as they are updated; `VACUUM FULL inventory.hosts`
 * rewrites the table at once (it locks it meanwhile).
 */
export class HostLivenessInPlace1764700000000 implements MigrationInterface {
  name = 'HostLivenessInPlace1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE hosts SET (fillfactor = 50)');
    await q.query('ALTER TABLE hosts ALTER COLUMN cpu_feature_set DROP EXPRESSION');
    await q.query(`CREATE FUNCTION hosts_feature_set() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
      BEGIN
        NEW.cpu_feature_set := md5(NEW.cpu_features::text);
        RETURN NEW;
      END $$`);
    await q.query('CREATE TRIGGER hosts_feature_set BEFORE INSERT OR UPDATE OF cpu_features, cpu_feature_set ON hosts FOR EACH ROW EXECUTE FUNCTION hosts_feature_set()');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER hosts_feature_set ON hosts');
    await q.query('DROP FUNCTION hosts_feature_set()');
    await q.query('ALTER TABLE hosts DROP COLUMN cpu_feature_set');
    await q.query('ALTER TABLE hosts ADD COLUMN cpu_feature_set text GENERATED ALWAYS AS (md5(cpu_features::text)) STORED');
    await q.query('ALTER TABLE hosts RESET (fillfactor)');
  }
}

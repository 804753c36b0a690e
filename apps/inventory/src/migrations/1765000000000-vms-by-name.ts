import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * VMs by name, in the list's order (`GET /api/v1/vms?name=`): the CLI finds a VM given by name with one
 * page of the VMs that bear it, where it read every VM of the fleet (10,500 at 1,000 hosts) and compared
 * the names itself. Names are not unique (the CLI refuses an ambiguous one with the ids).
 */
export class VmsByName1765000000000 implements MigrationInterface {
  name = 'VmsByName1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('CREATE INDEX vms_name_by_age ON vms (name, created_at, id)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX vms_name_by_age');
  }
}

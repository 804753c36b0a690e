import { ownerOf } from './route-table';

describe('the route table (which service owns an /api/v1 path)', () => {
  it.each([
    ['/api/v1/hosts', 'inventory'],
    ['/api/v1/hosts/host-a/maintenance', 'inventory'],
    ['/api/v1/vms/3f0c', 'inventory'],
    ['/api/v1/clusters', 'inventory'],
    ['/api/v1/clusters/c1/imc/verify', 'inventory'],
    ['/api/v1/reconciliation', 'inventory'],
    ['/api/v1/clusters/c1/migration-settings', 'scheduler'],
    ['/api/v1/migrations/m1/cancel', 'scheduler'],
    ['/api/v1/evacuations', 'scheduler'],
    ['/api/v1/cpu/models/Westmere/masks', 'cpu-compat'],
  ])('given %s, then %s owns it', (path, owner) => expect(ownerOf(path)).toBe(owner));

  it.each(['/api/v1/nothing', '/api/v1/hostsx', '/api/v2/hosts', '/api/v1', '/api/v1/cpus', '/api/v1/hosts/../migrations', '/api/v1/vms/%2E%2E/x', '/api/v1/vms/./x'])(
    'given %s, then nobody owns it',
    (path) => expect(ownerOf(path)).toBeUndefined(),
  );
});

import type { Command } from 'commander';
import type { Cluster, HostListItem, Vm } from '@flexmig/contracts';
import { parsePositiveInt } from '../args';
import { action, optionParser } from '../context';
import { findCluster, findVm } from '../resolve';
import { clustersNeedHosts, clustersTable, hostsNeedVms, hostsTable, vmsTable } from '../views';

/** `hosts`, `clusters`, `vms`, `vm create`: what inventory holds. */
export function registerInventory(program: Command): void {
  program
    .command('hosts')
    .description("hosts: each one's highest CPU mode, state, maintenance, VMs and capacity (-o json: each with its CPU feature list)")
    .option('--cluster <cluster>', 'only the hosts of this cluster (name or id)')
    .action(
      action(async (ctx, opts: { cluster?: string }) => {
        const clusterId = opts.cluster ? (await findCluster(ctx.api, opts.cluster)).id : undefined;
        const hosts = await ctx.api.hosts({ clusterId });
        // each host carries its VM count; a server before that is asked for every VM once, to count them here
        const vms = hostsNeedVms(hosts) ? await ctx.api.list<Vm>('/api/v1/vms', { clusterId }) : [];
        ctx.print(hosts, () => hostsTable(hosts, vms));
      }),
    );

  program
    .command('clusters')
    .description('clusters and their CPU mode (IMC)')
    .action(
      action(async (ctx) => {
        const clusters = await ctx.api.list<Cluster>('/api/v1/clusters');
        // each cluster carries its host count; a server before that is asked for every host once, to count them here
        const hosts = clustersNeedHosts(clusters) ? await ctx.api.list<HostListItem>('/api/v1/hosts') : [];
        ctx.print(clusters, () => clustersTable(clusters, hosts));
      }),
    );

  program
    .command('vms')
    .description('VMs: host, state, CPU baseline, size')
    .option('--host <host>', 'only the VMs on this host')
    .option('--cluster <cluster>', 'only the VMs of this cluster (name or id)')
    .action(
      action(async (ctx, opts: { host?: string; cluster?: string }) => {
        const clusterId = opts.cluster ? (await findCluster(ctx.api, opts.cluster)).id : undefined;
        const vms = await ctx.api.list<Vm>('/api/v1/vms', { hostId: opts.host, clusterId });
        ctx.print(vms, () => vmsTable(vms));
      }),
    );

  const vm = program.command('vm').description('one VM');
  vm.command('create')
    .description('create a VM and start it on a host (answers once it runs)')
    .argument('<name>', 'the VM name')
    .requiredOption('--host <host>', 'the host to start it on')
    .option('--memory <MiB>', 'memory in MiB', optionParser((v) => parsePositiveInt('--memory', v)), 1024)
    .option('--vcpus <n>', 'vCPUs', optionParser((v) => parsePositiveInt('--vcpus', v)), 1)
    .option('--baseline <mode>', "CPU baseline (default: the cluster's mode, or the highest every host passes)")
    .action(
      action(async (ctx, name: string, opts: { host: string; memory: number; vcpus: number; baseline?: string }) => {
        const created = await ctx.api.post<Vm>('/api/v1/vms', { name, hostId: opts.host, memoryMiB: opts.memory, vcpus: opts.vcpus, ...(opts.baseline ? { cpuBaseline: opts.baseline } : {}) });
        ctx.print(created, () => vmsTable([created]));
      }),
    );
  vm.command('show')
    .description('one VM (name or id)')
    .argument('<vm>')
    .action(
      action(async (ctx, key: string) => {
        const v = await findVm(ctx.api, key);
        ctx.print(v, () => vmsTable([v]));
      }),
    );
}

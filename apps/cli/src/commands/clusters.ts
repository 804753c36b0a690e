import type { Command } from 'commander';
import type { ClusterImc, ClusterImcPlan, ModeVerification } from '@flexmig/contracts';
import { parseImcMode } from '../args';
import { type ApiClient, refusal } from '../client';
import { action, optionParser } from '../context';
import { CliError, ExitCode } from '../exit-codes';
import { findCluster } from '../resolve';
import { autoView, imcView, planView, verificationView, type AutoTry } from '../views';

interface AutoResult {
  clusterId: string;
  mode: string;
  tries: AutoTry[];
  change: unknown;
}

/** `cluster imc show|set|verify|auto`, `cluster plan`: a cluster's CPU mode (inventory's IMC API). */
export function registerClusters(program: Command): void {
  const cluster = program.command('cluster').description("one cluster's CPU mode (IMC) and plan");
  const imc = cluster.command('imc').description('the CPU mode (IMC) VMs of the cluster get');
  const imcRoute = async (api: ApiClient, key: string, tail = '') => `/api/v1/clusters/${(await findCluster(api, key)).id}/imc${tail}`;
  // the tables name hosts in groups that read alike (a cluster of 1,000 hosts of three CPUs: three rows)
  const perHostOption = ['--hosts', 'a row per host instead of one per group of hosts that read alike'] as const;

  imc
    .command('show')
    .description("the mode as set, effective, the hosts' common mode and each host's highest")
    .argument('<cluster>', 'name or id')
    .option(...perHostOption)
    .action(
      action(async (ctx, key: string, opts: { hosts?: boolean }) => {
        const r = await ctx.api.get<ClusterImc>(await imcRoute(ctx.api, key));
        ctx.print(r, () => imcView(r, { perHost: opts.hosts }));
      }),
    );

  imc
    .command('set')
    .description('set the mode (refused when a host lacks it, or running VMs use a higher one)')
    .argument('<cluster>', 'name or id')
    .argument('<mode>', 'a mode name, "off" (host passthrough) or "unset"', optionParser(parseImcMode))
    .option(...perHostOption)
    .action(
      action(async (ctx, key: string, mode: string | null, opts: { hosts?: boolean }) => {
        const r = await ctx.api.put<{ previousMode: string | null; mode: string | null; changed: boolean; verification?: ModeVerification }>(await imcRoute(ctx.api, key), { mode });
        ctx.print(r, () => `${r.changed ? `mode changed from ${r.previousMode ?? '(unset)'} to ${r.mode ?? '(unset)'}` : `mode unchanged: ${r.mode ?? '(unset)'}`}${r.verification ? `\n\n${verificationView(r.verification, { perHost: opts.hosts })}` : ''}`);
      }),
    );

  imc
    .command('verify')
    .description('check every host against a mode: pass/fail and what each lacks (changes nothing)')
    .argument('<cluster>', 'name or id')
    .argument('<mode>', 'a mode name')
    .option(...perHostOption)
    .action(
      action(async (ctx, key: string, mode: string, opts: { hosts?: boolean }) => {
        const r = await ctx.api.post<ModeVerification>(await imcRoute(ctx.api, key, '/verify'), { mode });
        ctx.print(r, () => verificationView(r, { perHost: opts.hosts }));
      }),
    );

  imc
    .command('auto')
    .description('try the modes from the highest down, set the first every host passes; shows each try and what each host lacked')
    .argument('<cluster>', 'name or id')
    .action(
      action(async (ctx, key: string) => {
        const route = await imcRoute(ctx.api, key, '/auto');
        const r = await ctx.api.requestRaw<AutoResult & { code?: string; message?: string; details?: { tries?: AutoTry[] } }>('POST', route, {});
        if (r.status === 200) return ctx.print(r.body, () => autoView(r.body.tries, r.body.mode));
        // refused: when the probe ran (no mode fits), its tries are in the details; show them, then the refusal
        const tries = r.body?.details?.tries;
        if (tries && ctx.format === 'table') ctx.stdout.write(`${autoView(tries, undefined)}\n`);
        throw refusal(`POST ${route}`, r);
      }),
    );

  cluster
    .command('plan')
    .description('the mode all hosts pass today and why, the hosts holding it down, and per host its own highest mode and the cluster mode without it')
    .argument('<cluster>', 'name or id')
    .option(...perHostOption)
    .action(
      action(async (ctx, key: string, opts: { hosts?: boolean }) => {
        const c = await findCluster(ctx.api, key);
        const route = `/api/v1/clusters/${c.id}/imc/plan`;
        // the groups' states are the cluster's IMC view's, read beside the plan (the console does the same)
        const withStates = ctx.format === 'table' && !opts.hosts;
        const [r, imc] = await Promise.all([
          ctx.api.requestRaw<ClusterImcPlan>('GET', route),
          withStates ? ctx.api.requestRaw<ClusterImc>('GET', `/api/v1/clusters/${c.id}/imc`) : undefined,
        ]);
        if (r.status === 404) {
          // the cluster exists (found above): the server is from before the plan route
          throw new CliError(`GET ${route} answered 404: this server has no cluster plan API yet (inventory's GET /api/v1/clusters/:id/imc/plan). Upgrade inventory; meanwhile \`flexmig cluster imc show ${key}\` shows the modes`, ExitCode.Refused, r.body);
        }
        if (r.status !== 200) {
            throw refusal(`GET ${route}`, r);
        }
        // without the IMC view (refused, or a server that failed it) the groups show no states
        const hosts = imc?.status === 200 ? imc.body.hosts : undefined;
        ctx.print(r.body, () => planView(r.body, { perHost: opts.hosts, hosts }));
      }),
    );
}

import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import {
  ClusterPlanSchema,
  CpuEvaluationSchema,
  CpuModelSchema,
  type CpuidMasks,
  CpuidMasksSchema,
  CpuVerdict,
  ErrorCode,
  EvaluateCpuRequest,
  EvaluateCpuSchema,
  FlexmigError,
  GetCpuModel,
  GetHost,
  HostIdSchema,
  ListCpuModes,
  ListHosts,
  hostsOfSet,
  PlanCluster,
  PlanHostSchema,
  ReplyOf,
  RequestOf,
  UuidSchema,
  VerdictRequestSchema,
  VerdictSchema,
  VerifyCpuMode,
  withFeatures,
} from '@flexmig/contracts';
import type { EvaluateCpu } from '@flexmig/contracts';
import { NatsBus, requestAllPages } from '@flexmig/messaging';
import { Gate } from '@flexmig/timing';
import { ApiZodBody, ApiZodList, ApiZodQuery, ApiZodResponse, apiSchema, ErrorResponses, Role, ZodPipe } from '@flexmig/service-kit';
import { CpuCompatService } from './cpu-compat.service';

/**
 * At most this many hosts named by id, or described, in one plan: each id is a request to inventory, so an
 * unbounded list (a 256 KiB body holds tens of thousands of short ids) let one viewer's call keep
 * cpu-compat and inventory busy for seconds. A whole cluster, whatever its size, is `clusterId`.
 */
export const PLAN_HOSTS_MAX = 1_000;
/** The hosts named by id are read from inventory this many at a time (1,000 ids: 0.7 s one after another). */
const PLAN_LOOKUPS_AT_ONCE = 8;

const PlanBodySchema = apiSchema(
  'CpuPlanRequest',
  z
  .object({
    /** Hosts described in the request: planned as described, even where inventory knows a host of that id (what if it had this CPU). */
    hosts: z.array(PlanHostSchema).max(PLAN_HOSTS_MAX, `at most ${PLAN_HOSTS_MAX} hosts described; a whole cluster is clusterId`).optional(),
    /** Hosts inventory knows (each once; one also described in hosts is planned as described). */
    hostIds: z.array(HostIdSchema).max(PLAN_HOSTS_MAX, `at most ${PLAN_HOSTS_MAX} host ids; a whole cluster is clusterId`).optional(),
    /** Every host of a cluster inventory knows (those also described or named are planned once). */
    clusterId: UuidSchema.optional(),
  })
  .strict()
  .refine((b) => (b.hosts?.length ?? 0) + (b.hostIds?.length ?? 0) > 0 || b.clusterId !== undefined, {
    message: 'name the hosts: hosts (described), hostIds (known to inventory) or clusterId',
  })
  .superRefine((b, ctx) => {
    const seen = new Set<string>();
    for (const [i, h] of (b.hosts ?? []).entries()) {
      if (seen.has(h.id)) ctx.addIssue({ code: 'custom', path: ['hosts', i, 'id'], message: `host ${h.id} is described twice: which CPU should the plan take?` });
      seen.add(h.id);
    }
  }),
);
type PlanBody = z.infer<typeof PlanBodySchema>;

const MasksQuerySchema = z.object({ hostId: HostIdSchema });
const ModelsQuerySchema = z.object({
  vendor: z.enum(['Intel', 'AMD', 'Hygon']).optional(),
  ladder: z.enum(['intel', 'intel-ecore', 'amd', 'hygon', 'psabi']).optional(),
});

@ApiTags('cpu')
@Controller('api/v1/cpu')
export class CpuHttpController {
  constructor(
    private readonly cpu: CpuCompatService,
    private readonly bus: NatsBus,
  ) {}

  @Post('evaluate')
  @Role('viewer')
  @HttpCode(200)
  @ApiOperation({ summary: 'Evaluate a host CPU given as /proc/cpuinfo text, raw CPUID rows, or a feature list.' })
  @ApiZodBody(EvaluateCpuSchema, '{cpuinfo} | {cpuid: [{leaf, subleaf, eax, ebx, ecx, edx}]} | {features, vendor?}')
  @ApiZodResponse(200, CpuEvaluationSchema, 'vendor, features, highest IMC mode, and the ladder with what is missing')
  @ErrorResponses(400, 422)
  evaluate(@Body(new ZodPipe(EvaluateCpuSchema)) body: EvaluateCpu) {
    return this.cpu.evaluate(body);
  }

  @Post('verdict')
  @Role('viewer')
  @HttpCode(200)
  @ApiOperation({ summary: 'May a VM with this baseline run on the target CPU? 422 naming the missing features if not.' })
  @ApiZodBody(VerdictRequestSchema)
  @ApiZodResponse(200, VerdictSchema, 'compatible')
  @ErrorResponses(400, 404, 422)
  verdict(@Body(new ZodPipe(VerdictRequestSchema)) body: z.infer<typeof VerdictRequestSchema>) {
    const v = this.cpu.verdict(body.baseline, body.target, body.vmFeatures);
    if (!v.compatible) {
      throw new FlexmigError(ErrorCode.CpuIncompatible, `CPU incompatible: ${v.reason}`, {
        baseline: v.baseline,
        missing: v.missing,
        vendorMismatch: v.vendorMismatch,
      });
    }
    return v;
  }

  @Get('models')
  @Role('viewer')
  @ApiOperation({ summary: 'The catalog: every baseline (IMC mode) and psABI level, in one page (nextCursor is null).' })
  @ApiZodQuery(ModelsQuerySchema)
  @ApiZodList(CpuModelSchema, 'the baselines')
  @ErrorResponses(400)
  models(@Query(new ZodPipe(ModelsQuerySchema, 'query')) q: z.infer<typeof ModelsQuerySchema>) {
    return { items: this.cpu.models(q), nextCursor: null }; // the catalog is small and fixed: one page
  }

  @Get('models/:name')
  @Role('viewer')
  @ApiOperation({ summary: 'One baseline (IMC mode) of the catalog by name or alias: its features and the QEMU CPU model that presents it.' })
  @ApiZodResponse(200, CpuModelSchema, 'one baseline')
  @ErrorResponses(404)
  model(@Param('name') name: string) {
    return this.cpu.model(name);
  }

  @Get('models/:name/masks')
  @Role('viewer')
  @ApiOperation({ summary: 'CPUID masks (per leaf and register, hex) that present this baseline on a host.' })
  @ApiZodQuery(MasksQuerySchema)
  @ApiZodResponse(200, CpuidMasksSchema, 'the masks per leaf and register')
  @ErrorResponses(400, 404)
  async masks(@Param('name') name: string, @Query(new ZodPipe(MasksQuerySchema, 'query')) q: { hostId: string }): Promise<CpuidMasks> {
    const model = this.cpu.model(name); // unknown model: 404 before asking inventory
    const { host } = await this.bus.request(GetHost, { hostId: q.hostId });
    return { model: model.name, hostId: host.id, masks: this.cpu.masks(model.name, host.cpu.features) };
  }

  @Post('plan')
  @Role('viewer')
  @HttpCode(200)
  @ApiOperation({
    summary: 'The mode a set of hosts would get, which hosts hold it down, and the mode without each.',
    description:
      `Each host is planned once: as described in \`hosts\` (even where inventory knows a host of that id), else as inventory knows it. ` +
      `At most ${PLAN_HOSTS_MAX} hosts described and ${PLAN_HOSTS_MAX} named by id; a whole cluster, whatever its size, is \`clusterId\`.`,
  })
  @ApiZodBody(PlanBodySchema)
  @ApiZodResponse(200, ClusterPlanSchema, 'the plan')
  @ErrorResponses(400, 404)
  async plan(@Body(new ZodPipe(PlanBodySchema)) body: PlanBody) {
    // each host once: as described, else as inventory knows it (named, then the cluster's)
    const hosts = new Map((body.hosts ?? []).map((h) => [h.id, h]));
    const lookups = new Gate(PLAN_LOOKUPS_AT_ONCE);
    const named = [...new Set(body.hostIds ?? [])].filter((id) => !hosts.has(id));
    let refused: unknown; // the first id inventory refuses answers the plan: the ids still waiting are not looked up
    const lookUp = async (hostId: string) => {
      if (refused) throw refused;
      try {
        return (await this.bus.request(GetHost, { hostId })).host;
      } catch (e) {
        refused ??= e;
        throw e;
      }
    };
    const known = await Promise.all(named.map((hostId) => lookups.run(() => lookUp(hostId))));
    for (const host of known) hosts.set(host.id, { id: host.id, vendor: host.cpu.vendor, features: host.cpu.features });
    if (body.clusterId) {
      const members = await requestAllPages(this.bus, ListHosts, { clusterId: body.clusterId }, (r) => r.hosts.map((h) => withFeatures(h, r.featureSets)));
      for (const h of members) if (!hosts.has(h.id)) hosts.set(h.id, { id: h.id, vendor: h.cpu.vendor, features: h.cpu.features });
    }
    if (hosts.size === 0) throw new FlexmigError(ErrorCode.ValidationFailed, 'the plan has no hosts (the cluster has none registered)');
    return this.cpu.plan([...hosts.values()]);
  }
}

/** cpu-compat's NATS side (queue group `cpu-compat`: replicas share the requests). */
@Controller()
export class CpuNatsHandlers {
  constructor(private readonly cpu: CpuCompatService) {}

  @MessagePattern(EvaluateCpuRequest.subject)
  evaluate(r: RequestOf<typeof EvaluateCpuRequest>): ReplyOf<typeof EvaluateCpuRequest> {
    return this.cpu.evaluate(r);
  }

  @MessagePattern(CpuVerdict.subject)
  verdict(r: RequestOf<typeof CpuVerdict>): ReplyOf<typeof CpuVerdict> {
    return this.cpu.verdict(r.baseline, r.target, r.vmFeatures);
  }

  @MessagePattern(GetCpuModel.subject)
  model(r: RequestOf<typeof GetCpuModel>): ReplyOf<typeof GetCpuModel> {
    return { model: this.cpu.model(r.name) };
  }

  @MessagePattern(PlanCluster.subject)
  plan(r: RequestOf<typeof PlanCluster>): ReplyOf<typeof PlanCluster> {
    return this.cpu.plan(hostsOfSet(r));
  }

  @MessagePattern(VerifyCpuMode.subject)
  verify(r: RequestOf<typeof VerifyCpuMode>): ReplyOf<typeof VerifyCpuMode> {
    return this.cpu.verify(r.mode, hostsOfSet(r));
  }

  @MessagePattern(ListCpuModes.subject)
  ladder(r: RequestOf<typeof ListCpuModes>): ReplyOf<typeof ListCpuModes> {
    return this.cpu.ladder(r.vendor);
  }
}

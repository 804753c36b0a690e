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
import { ApiZodBody, ApiZodList, ApiZodQuery, ApiZodResponse, apiSchema, ErrorResponses, Role, ZodPipe } from '@flexmig/service-kit';
import { CpuCompatService } from './cpu-compat.service';

const PlanBodySchema = apiSchema(
  'CpuPlanRequest',
  z
  .object({
    /** Hosts described in the request. */
    hosts: z.array(PlanHostSchema).optional(),
    /** Hosts inventory knows. */
    hostIds: z.array(HostIdSchema).optional(),
    /** Every host of a cluster inventory knows. */
    clusterId: UuidSchema.optional(),
  })
  .strict()
  .refine((b) => (b.hosts?.length ?? 0) + (b.hostIds?.length ?? 0) > 0 || b.clusterId !== undefined, {
    message: 'name the hosts: hosts (described), hostIds (known to inventory) or clusterId',
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
  @ApiOperation({ summary: 'The mode a set of hosts would get, which hosts hold it down, and the mode without each.' })
  @ApiZodBody(PlanBodySchema)
  @ApiZodResponse(200, ClusterPlanSchema, 'the plan')
  @ErrorResponses(400, 404)
  async plan(@Body(new ZodPipe(PlanBodySchema)) body: PlanBody) {
    const hosts = [...(body.hosts ?? [])];
    for (const hostId of body.hostIds ?? []) {
      const { host } = await this.bus.request(GetHost, { hostId });
      hosts.push({ id: host.id, vendor: host.cpu.vendor, features: host.cpu.features });
    }
    if (body.clusterId) {
      const members = await requestAllPages(this.bus, ListHosts, { clusterId: body.clusterId }, (r) => r.hosts.map((h) => withFeatures(h, r.featureSets)));
      hosts.push(...members.map((h) => ({ id: h.id, vendor: h.cpu.vendor, features: h.cpu.features })));
    }
    if (hosts.length === 0) throw new FlexmigError(ErrorCode.ValidationFailed, 'the plan has no hosts (the cluster has none registered)');
    return this.cpu.plan(hosts);
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

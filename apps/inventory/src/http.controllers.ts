import { Body, Controller, Get, HttpCode, Param, Post, Put, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { ClusterDetailSchema, ClusterSchema, CpuCheckRequestSchema, PageQuerySchema, CreateClusterSchema, CreateVmSchema, GuestCpuCheckSchema, HostIdSchema, HostPageSchema, HostSchema, NameSchema, UpdateAllocationRatiosSchema, UuidSchema, VmSchema } from '@flexmig/contracts';
import type { CpuCheckRequest, CreateCluster, CreateVm, PageQuery, UpdateAllocationRatios } from '@flexmig/contracts';
import { ApiZodBody, ApiZodList, ApiZodQuery, ApiZodResponse, ErrorResponses, Role, ZodPipe } from '@flexmig/service-kit';
import { ClustersService } from './clusters/clusters.service';
import { HostsService } from './hosts/hosts.service';
import { VmsService } from './vms/vms.service';
import { VmCpuCheckService } from './vms/cpu-check.service';

const uuidParam = (what: string) => new ZodPipe(UuidSchema, what);
const HostsQuerySchema = z.object({ clusterId: UuidSchema.optional(), ...PageQuerySchema.shape }).strict();
const VmsQuerySchema = z.object({ hostId: HostIdSchema.optional(), clusterId: UuidSchema.optional(), name: NameSchema.optional(), ...PageQuerySchema.shape }).strict();
const ClustersQuerySchema = z.object({ ...PageQuerySchema.shape }).strict();

@ApiTags('clusters')
@Controller('api/v1/clusters')
export class ClustersController {
  constructor(private readonly clusters: ClustersService) {}

  @Post()
  @Role('admin')
  @ApiOperation({ summary: 'Create a cluster, optionally with its CPU baseline (IMC mode).' })
  @ApiZodBody(CreateClusterSchema)
  @ApiZodResponse(201, ClusterSchema, 'the cluster')
  @ErrorResponses(400, 404, 409)
  create(@Body(new ZodPipe(CreateClusterSchema)) body: CreateCluster) {
    return this.clusters.create(body);
  }

  @Get()
  @Role('viewer')
  @ApiOperation({ summary: 'Clusters, oldest first, a page at a time (limit, cursor).' })
  @ApiZodQuery(ClustersQuerySchema)
  @ApiZodList(ClusterSchema, 'a page of clusters')
  @ErrorResponses(400)
  list(@Query(new ZodPipe(ClustersQuerySchema, 'query')) q: PageQuery) {
    return this.clusters.page(q);
  }

  @Get(':id')
  @Role('viewer')
  @ApiOperation({ summary: 'A cluster with its host count and the CPU baseline its VMs get by default (its hosts: GET /api/v1/hosts?clusterId=).' })
  @ApiZodResponse(200, ClusterDetailSchema, 'the cluster, how many hosts it has, and the mode they all support')
  @ErrorResponses(400, 404)
  get(@Param('id', uuidParam('cluster id')) id: string) {
    return this.clusters.detail(id);
  }

  @Put(':id/allocation-ratios')
  @Role('admin')
  @ApiOperation({ summary: "Set the cluster's overcommit: vCPUs and memory its hosts may hold per vCPU and MiB they have (a host already over keeps its VMs and takes no new one)." })
  @ApiZodBody(UpdateAllocationRatiosSchema)
  @ApiZodResponse(200, ClusterSchema, 'the cluster')
  @ErrorResponses(400, 404)
  setAllocationRatios(@Param('id', uuidParam('cluster id')) id: string, @Body(new ZodPipe(UpdateAllocationRatiosSchema)) body: UpdateAllocationRatios) {
    return this.clusters.setAllocationRatios(id, body);
  }
}

@ApiTags('hosts')
@Controller('api/v1/hosts')
export class HostsController {
  constructor(private readonly hosts: HostsService) {}

  @Get()
  @Role('viewer')
  @ApiOperation({ summary: 'Hosts (registered by their agents) by id, with their highest CPU baseline, a page at a time (limit, cursor); filter by cluster.' })
  @ApiZodQuery(HostsQuerySchema)
  @ApiZodResponse(200, HostPageSchema, 'a page of hosts, each CPU feature list once in `featureSets` under the digest its hosts name (`cpu.featureSet`)')
  @ErrorResponses(400)
  list(@Query(new ZodPipe(HostsQuerySchema, 'query')) q: z.infer<typeof HostsQuerySchema>) {
    return this.hosts.page(q);
  }

  @Get(':id')
  @Role('viewer')
  @ApiOperation({ summary: 'A host: its CPU and highest mode, capacity and what is allocated, state, maintenance and last heartbeat.' })
  @ApiZodResponse(200, HostSchema, 'the host')
  @ErrorResponses(400, 404)
  get(@Param('id', new ZodPipe(HostIdSchema, 'host id')) id: string) {
    return this.hosts.get(id);
  }
}

@ApiTags('vms')
@Controller('api/v1/vms')
export class VmsController {
  constructor(
    private readonly vms: VmsService,
    private readonly cpuCheck: VmCpuCheckService,
  ) {}

  @Post()
  @Role('operator')
  @HttpCode(201)
  @ApiOperation({ summary: 'Create a VM and start it on a host through its agent; answers once it runs.' })
  @ApiZodBody(CreateVmSchema)
  @ApiZodResponse(201, VmSchema, 'the running VM')
  @ErrorResponses(400, 404, 409, 422, 502, 503)
  create(@Body(new ZodPipe(CreateVmSchema)) body: CreateVm) {
    return this.vms.create(body);
  }

  @Get()
  @Role('viewer')
  @ApiOperation({ summary: 'VMs, oldest first, a page at a time (limit, cursor); filter by host, cluster or name.' })
  @ApiZodQuery(VmsQuerySchema)
  @ApiZodList(VmSchema, 'a page of VMs')
  @ErrorResponses(400)
  list(@Query(new ZodPipe(VmsQuerySchema, 'query')) q: z.infer<typeof VmsQuerySchema>) {
    return this.vms.page(q);
  }

  @Get(':id')
  @Role('viewer')
  @ApiOperation({ summary: 'A VM: its host, state and CPU baseline.' })
  @ApiZodResponse(200, VmSchema, 'the VM, with its host, state and CPU baseline')
  @ErrorResponses(400, 404)
  get(@Param('id', uuidParam('VM id')) id: string) {
    return this.vms.get(id);
  }

  @Post(':id/cpu-check')
  @Role('operator')
  @HttpCode(200)
  @ApiOperation({
    summary:
      "What the VM's guest sees of its CPU against its baseline: features missing, visible outside it, documented exceptions. The qemu driver reads CPUID the guest executes after the request (source guest); the sim driver answers from its model (source model).",
  })
  @ApiZodBody(CpuCheckRequestSchema, 'no options: an empty body or {}')
  @ApiZodResponse(200, GuestCpuCheckSchema, 'the check (ok false names what differs)')
  @ErrorResponses(400, 404, 409, 502, 503, 504)
  // the body is validated (nothing is accepted in it) so that a stray field is refused, not ignored
  checkCpu(@Param('id', uuidParam('VM id')) id: string, @Body(new ZodPipe(CpuCheckRequestSchema)) _body: CpuCheckRequest) {
    return this.cpuCheck.check(id);
  }
}

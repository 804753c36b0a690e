import { Body, Controller, Get, HttpCode, Param, Post, Put } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import {
  AutoImcModeSchema,
  AutoImcResultSchema,
  ClusterImcPlanSchema,
  ClusterImcSchema,
  ImcChangeSchema,
  ModeVerificationSchema,
  SetImcModeSchema,
  UuidSchema,
  VerifyImcModeSchema,
} from '@flexmig/contracts';
import type { AutoImcMode, SetImcMode, VerifyImcMode } from '@flexmig/contracts';
import { ApiZodBody, ApiZodResponse, Caller, ErrorResponses, type Principal, Role, ZodPipe } from '@flexmig/service-kit';
import { ImcService } from './imc.service';

@ApiTags('clusters')
@Controller('api/v1/clusters/:id/imc')
export class ImcController {
  constructor(private readonly imc: ImcService) {}

  @Get()
  @Role('viewer')
  @ApiOperation({ summary: "The cluster's CPU mode (IMC): as set, effective, the hosts' common mode and each host's highest." })
  @ApiZodResponse(200, ClusterImcSchema, 'the mode')
  @ErrorResponses(400, 404)
  get(@Param('id', new ZodPipe(UuidSchema, 'cluster id')) id: string) {
    return this.imc.get(id);
  }

  @Get('plan')
  @Role('viewer')
  @ApiOperation({
    summary:
      "The cluster's plan, from its registered hosts: the highest mode they all pass today, which hosts hold it down, the mode without each host, and each host's own highest mode.",
  })
  @ApiZodResponse(200, ClusterImcPlanSchema, 'the plan')
  @ErrorResponses(400, 404)
  plan(@Param('id', new ZodPipe(UuidSchema, 'cluster id')) id: string) {
    return this.imc.plan(id);
  }

  @Put()
  @Role('admin')
  @ApiOperation({
    summary:
      'Set the mode: a mode name, "off" (host passthrough) or null (unset). Refused (422) when a host lacks it, (409) when running VMs use a higher baseline; nothing changes then.',
  })
  @ApiZodBody(SetImcModeSchema)
  @ApiZodResponse(200, ImcChangeSchema, 'what changed')
  @ErrorResponses(400, 404, 409, 422)
  set(@Param('id', new ZodPipe(UuidSchema, 'cluster id')) id: string, @Body(new ZodPipe(SetImcModeSchema)) body: SetImcMode, @Caller() caller: Principal) {
    // who changed it is the token's subject; a `by` in the body is ignored (it is anyone's to write)
    return this.imc.set(id, body.mode, caller.sub);
  }

  @Post('verify')
  @Role('admin')
  @HttpCode(200)
  @ApiOperation({ summary: 'Check every host of the cluster against a mode: per host pass/fail with the missing features. Changes nothing.' })
  @ApiZodBody(VerifyImcModeSchema)
  @ApiZodResponse(200, ModeVerificationSchema, 'per host pass/fail')
  @ErrorResponses(400, 404)
  verify(@Param('id', new ZodPipe(UuidSchema, 'cluster id')) id: string, @Body(new ZodPipe(VerifyImcModeSchema)) body: VerifyImcMode) {
    return this.imc.verify(id, body.mode);
  }

  @Post('auto')
  @Role('admin')
  @HttpCode(200)
  @ApiOperation({ summary: "Try the modes of the hosts' ladder from the highest down; set the first every host passes; report each try." })
  @ApiZodBody(AutoImcModeSchema)
  @ApiZodResponse(200, AutoImcResultSchema, 'the mode set, each mode tried, and the change')
  @ErrorResponses(400, 404, 409, 422)
  auto(@Param('id', new ZodPipe(UuidSchema, 'cluster id')) id: string, @Body(new ZodPipe(AutoImcModeSchema)) _body: AutoImcMode, @Caller() caller: Principal) {
    return this.imc.auto(id, caller.sub);
  }
}

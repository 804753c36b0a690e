// Test support for this library's own specs (a tiny Nest app behind configureHttp on loopback). Not
// exported: specs of other projects use @flexmig/testing, which this library cannot import (it imports us).
import { Body, Controller, Get, INestApplication, Logger, Module, Post, Put } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { AddressInfo } from 'node:net';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { configureHttp, type HttpSettings } from '../http';
import { Caller } from './auth.guard';
import { Public, Role } from './roles';
import type { Principal } from './token-verifier';

export const probePage = {
  items: Array.from({ length: 250 }, (_, i) => ({ id: `host-${String(i).padStart(4, '0')}`, name: i % 7 ? `h${i}` : `hôte «${i}»`, at: new Date(Date.UTC(2026, 11, 3, 0, 0, i)) })),
  nextCursor: 'host-0249',
};

@Controller('t')
export class ProbeController {
  @Get('read')
  @Role('viewer')
  read(@Caller() caller: Principal) {
    return caller;
  }

  @Post('write')
  @Role('operator')
  write(@Body() body: unknown, @Caller() caller: Principal) {
    return { bytes: JSON.stringify(body).length, sub: caller.sub };
  }

  @Put('settings')
  @Role('admin')
  settings() {
    return { ok: true };
  }

  /** A page of 250 items: long enough to be written in pieces (json-body.ts). */
  @Get('page')
  @Role('viewer')
  page() {
    return probePage;
  }

  @Get('open')
  @Public()
  open() {
    return { ok: true };
  }

  @Get('bug')
  @Role('viewer')
  bug() {
    throw new Error('connect ECONNREFUSED db.internal:5432 password=hunter2');
  }

  @Get('unavailable')
  @Role('viewer')
  unavailable() {
    throw new FlexmigError(ErrorCode.Unavailable, 'agent host-b did not answer: try again');
  }
}

@Controller('u')
export class UndeclaredController {
  @Get()
  forgotten() {
    return { ok: true };
  }
}

@Module({ controllers: [ProbeController] })
export class ProbeModule {}

@Module({ controllers: [ProbeController, UndeclaredController] })
export class UndeclaredModule {}

export interface ProbeApp {
  app: INestApplication;
  url: string;
  call(method: string, path: string, opts?: { token?: string; body?: string }): Promise<{ status: number; body: any; headers: Headers }>;
}

export async function startProbeApp(settings: HttpSettings, module: object = ProbeModule, logger?: Logger): Promise<ProbeApp> {
  const app = await NestFactory.create(module as never, { logger: false, bodyParser: false, abortOnError: false });
  try {
    configureHttp(app, settings, logger);
  } catch (e) {
    await app.close();
    throw e;
  }
  await app.listen(0, '127.0.0.1');
  const url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  return {
    app,
    url,
    async call(method, path, opts = {}) {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) },
        body: opts.body,
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
    },
  };
}

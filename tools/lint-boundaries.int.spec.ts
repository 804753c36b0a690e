import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

// The module boundaries of eslint.config.mjs must actually fail a lint run. Violations are planted in a
// scratch copy of the workspace (its configuration, apps and libs, with node_modules linked), so the real
// tree is never touched; ESLint runs there as a process because Nx reads the workspace from the working
// directory. Integration project: it spawns ESLint, which builds the scratch copy's project graph.
const repoRoot = path.resolve(__dirname, '..');
// the packages' bin entries (their exports hide bin/ from require.resolve)
const binOf = (pkg: string, name: string) =>
  path.join(repoRoot, 'node_modules', pkg, (JSON.parse(readFileSync(path.join(repoRoot, 'node_modules', pkg, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin[name]!);

interface LintMessage {
  ruleId: string | null;
  message: string;
}

const planted = {
  // a domain library reaching for infrastructure (type:domain → type:infra)
  'libs/saga/src/lib/planted-infra.ts': "import { NatsBus } from '@flexmig/messaging';\nexport const bus = NatsBus;\n",
  // a pure utility reaching for infrastructure (type:util imports nothing of ours)
  'libs/timing/src/planted-infra.ts': "import { NatsBus } from '@flexmig/messaging';\nexport const bus = NatsBus;\n",
  // a pure library doing I/O (Node builtins are not npm packages: no-restricted-imports catches them)
  'libs/saga/src/lib/planted-fs.ts': "import fs from 'node:fs';\nexport const read = fs.readFileSync;\n",
  'libs/cpu-models/src/planted-fs-promises.ts': "import { readFile } from 'fs/promises';\nexport const read = readFile;\n",
  // the wire contracts depending on NestJS (bannedExternalImports on type:contracts)
  'libs/contracts/src/planted-nest.ts': "import { Injectable } from '@nestjs/common';\nexport const decorator = Injectable;\n",
  // an app importing another app: by a relative path, and by an alias (added to the scratch tsconfig)
  'apps/inventory/src/planted-app.ts': "import { SchedulerEnvSchema } from '../../scheduler/src/config';\nexport const schema = SchedulerEnvSchema;\n",
  'apps/inventory/src/planted-app-alias.ts': "import { SchedulerEnvSchema } from '@flexmig/scheduler';\nexport const schema = SchedulerEnvSchema;\n",
  // the control: an allowed import (domain → contracts) and a pure module that does no I/O
  'libs/saga/src/lib/planted-allowed.ts': "import { ErrorCode } from '@flexmig/contracts';\nexport const code = ErrorCode.Conflict;\n",
};

describe('module boundaries (eslint.config.mjs)', () => {
  let scratch: string;
  let results: Record<string, LintMessage[]>;

  beforeAll(() => {
    scratch = mkdtempSync(path.join(tmpdir(), 'flexmig-lint-'));
    for (const f of ['nx.json', 'package.json', 'package-lock.json', 'tsconfig.base.json', 'eslint.config.mjs']) cpSync(path.join(repoRoot, f), path.join(scratch, f));
    for (const d of ['apps', 'libs']) cpSync(path.join(repoRoot, d), path.join(scratch, d), { recursive: true });
    symlinkSync(path.join(repoRoot, 'node_modules'), path.join(scratch, 'node_modules'), 'dir');
    for (const [file, text] of Object.entries(planted)) writeFileSync(path.join(scratch, file), text);
    const tsconfig = JSON.parse(readFileSync(path.join(scratch, 'tsconfig.base.json'), 'utf8'));
    tsconfig.compilerOptions.paths['@flexmig/scheduler'] = ['apps/scheduler/src/config.ts'];
    writeFileSync(path.join(scratch, 'tsconfig.base.json'), JSON.stringify(tsconfig, null, 2));

    const env = { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' };
    // the boundaries rule reads the project graph Nx caches (and skips itself, with a warning, when there
    // is none): build it first, as `nx run-many -t lint` does
    execFileSync(process.execPath, [binOf('nx', 'nx'), 'show', 'projects'], { cwd: scratch, env, stdio: 'pipe' });

    // the report goes to a file: Nx may print its own notices on stdout while it builds the graph
    const reportFile = path.join(scratch, 'eslint-report.json');
    try {
      execFileSync(process.execPath, [binOf('eslint', 'eslint'), '--format', 'json', '--output-file', reportFile, ...Object.keys(planted)], {
        cwd: scratch,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (e) {
      const err = e as Error & { status?: number; stderr?: Buffer };
      // exit 1: lint errors found (what we want); anything else is ESLint itself failing
      if (err.status !== 1) throw new Error(`eslint did not run to its verdict (exit ${err.status}): ${err.stderr ?? err.message}`);
    }
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as { filePath: string; messages: LintMessage[] }[];
    results = Object.fromEntries(report.map((r) => [path.relative(scratch, r.filePath), r.messages]));
  }, 120_000);

  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  const rulesOf = (file: string) => results[file]?.map((m) => m.ruleId) ?? [];

  it('fails a domain library or a pure utility that imports an infrastructure library', () => {
    expect(rulesOf('libs/timing/src/planted-infra.ts')).toContain('@nx/enforce-module-boundaries');
    expect(rulesOf('libs/saga/src/lib/planted-infra.ts')).toContain('@nx/enforce-module-boundaries');
    expect(results['libs/saga/src/lib/planted-infra.ts']!.map((m) => m.message).join('\n')).toMatch(/type:domain.*type:contracts/s);
  });

  it('fails a pure library that imports one of Node’s I/O modules, with or without node:', () => {
    expect(rulesOf('libs/saga/src/lib/planted-fs.ts')).toContain('no-restricted-imports');
    expect(rulesOf('libs/cpu-models/src/planted-fs-promises.ts')).toContain('no-restricted-imports');
  });

  it('fails the contracts library when it imports NestJS', () => {
    expect(rulesOf('libs/contracts/src/planted-nest.ts')).toContain('@nx/enforce-module-boundaries');
    expect(results['libs/contracts/src/planted-nest.ts']!.map((m) => m.message).join('\n')).toMatch(/@nestjs\/common/);
  });

  it('fails an app that imports another app, by a relative path or by an alias', () => {
    expect(rulesOf('apps/inventory/src/planted-app.ts')).toContain('@nx/enforce-module-boundaries');
    expect(rulesOf('apps/inventory/src/planted-app-alias.ts')).toContain('@nx/enforce-module-boundaries');
    expect(results['apps/inventory/src/planted-app-alias.ts']!.map((m) => m.message).join('\n')).toMatch(/apps are forbidden|type:app/);
  });

  it('passes an allowed import, so the failures above are the rules and not a broken setup', () => {
    expect(results['libs/saga/src/lib/planted-allowed.ts']).toEqual([]);
  });
});

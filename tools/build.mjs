// Builds apps into dist/apps/<app>/main.js: `node tools/build.mjs [app ...]` (all apps when none given).
//
// 1. `tsc -p tsconfig.build.json` compiles (and type-checks) the whole workspace into dist/out-tsc,
//    incrementally. A full program is needed because NestJS's DI reads `emitDecoratorMetadata`, and only
//    the type checker knows whether a decorated parameter's type is a class or an interface.
// 2. esbuild bundles each app's compiled main.js with the workspace libraries it imports (`@flexmig/*`),
//    leaving every npm package external (installed by `npm ci`).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const allApps = readdirSync(path.join(root, 'apps')).filter((a) => existsSync(path.join(root, 'apps', a, 'src/main.ts')));
const apps = process.argv.slice(2).length ? process.argv.slice(2) : allApps;
for (const app of apps) {
  if (!allApps.includes(app)) {
    console.error(`unknown app ${app}; apps: ${allApps.join(', ')}`);
    process.exit(2);
  }
}

const started = Date.now();
try {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
} catch {
  console.error('type check failed: nothing was bundled');
  process.exit(1);
}
console.log(`compiled the workspace in ${Date.now() - started} ms`);

const outTsc = path.join(root, 'dist/out-tsc');
const workspaceLibs = {
  name: 'workspace-libs',
  setup(b) {
    b.onResolve({ filter: /^@flexmig\// }, (args) => ({ path: path.join(outTsc, 'libs', args.path.slice('@flexmig/'.length), 'src/index.js') }));
  },
};

for (const app of apps) {
  const t = Date.now();
  await build({
    absWorkingDir: root,
    entryPoints: [path.join(outTsc, 'apps', app, 'src/main.js')],
    outfile: path.join(root, 'dist/apps', app, 'main.js'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    packages: 'external',
    sourcemap: 'inline',
    keepNames: true,
    logLevel: 'warning',
    plugins: [workspaceLibs],
  });
  console.log(`bundled dist/apps/${app}/main.js in ${Date.now() - t} ms`);
}

// Builds apps into dist/apps/<app>/main.js: `node tools/build.mjs [app ...]` (all apps when none given).
//
// 1. `tsc -p tsconfig.build.json` compiles (and type-checks) the whole workspace into dist/out-tsc,
//    incrementally. A full program is needed because NestJS's DI reads `emitDecoratorMetadata`, and only
//    the type checker knows whether a decorated parameter's type is a class or an interface.
// 2. esbuild bundles each app's compiled main.js with the workspace libraries it imports (`@flexmig/*`),
//    leaving every npm package external (installed by `npm ci`).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, readdirSync, existsSync } from 'node:fs';
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
  // main.ts, plus any other entry named *-main.ts (the agent's fleet-main.ts becomes dist/apps/agent/fleet.js)
  const entries = findFiles(path.join(root, 'apps', app, 'src'), /-main\.ts$/).map((f) => ({
    in: path.join(outTsc, path.relative(root, f)).replace(/\.ts$/, '.js'),
    out: path.basename(f).replace(/-main\.ts$/, ''),
  }));
  await build({
    absWorkingDir: root,
    entryPoints: [{ in: path.join(outTsc, 'apps', app, 'src/main.js'), out: 'main' }, ...entries],
    outdir: path.join(root, 'dist/apps', app),
    bundle: true,
    platform: 'node',
    target: 'node24', // the runtime of the image; the code is ES2022 (tsconfig), so Node 22 runs the bundles too
    format: 'cjs',
    packages: 'external',
    sourcemap: 'inline',
    keepNames: true,
    logLevel: 'warning',
    plugins: [workspaceLibs],
  });
  // assets the app reads beside its code at run time (the qemu driver's guest source): flat into dist
  for (const asset of findFiles(path.join(root, 'apps', app, 'src'), /\.S$/)) copyFileSync(asset, path.join(root, 'dist/apps', app, path.basename(asset)));
  console.log(`bundled dist/apps/${app}/{${['main', ...entries.map((e) => e.out)].join(',')}}.js in ${Date.now() - t} ms`);
}

function findFiles(dir, pattern) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? findFiles(path.join(dir, e.name), pattern) : pattern.test(e.name) ? [path.join(dir, e.name)] : [],
  );
}

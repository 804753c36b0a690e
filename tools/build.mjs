// Builds one workspace project: `node tools/build.mjs <project>` (Nx runs it as each project's `build`
// target, after the projects it imports: `dependsOn: ["^build"]`).
//
// 1. `tsc -p <project>/tsconfig.{lib,app}.json` compiles and type-checks the project alone into
//    dist/out-tsc/<apps|libs>/<project>, incrementally (composite, tsbuildinfo beside the output). Imports
//    of other @flexmig projects resolve to their built .d.ts (project references), so the type checker
//    still sees every type: NestJS's DI reads `emitDecoratorMetadata`, and only the checker knows whether
//    a decorated parameter's type is a class or an interface. A missing reference fails the compile.
// 2. For an app, esbuild bundles its compiled main.js with the workspace libraries it imports
//    (`@flexmig/*` → dist/out-tsc/libs/<lib>/index.js) into dist/apps/<app>, leaving every npm package
//    external (installed by `npm ci`).
// Every file it writes is under the project's declared outputs, which is what makes Nx's cache honest.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const projects = Object.fromEntries(
  ['apps', 'libs'].flatMap((kind) => readdirSync(path.join(root, kind)).map((name) => [name, kind])),
);
const name = process.argv[2];
if (process.argv.length !== 3 || !projects[name]) {
  console.error(`usage: node tools/build.mjs <project>; projects: ${Object.keys(projects).join(', ')}`);
  console.error('to build everything in order, with the cache: npm run build');
  process.exit(2);
}
const kind = projects[name];
const projectDir = path.join(root, kind, name);

const started = Date.now();
const tsconfig = path.join(projectDir, kind === 'apps' ? 'tsconfig.app.json' : 'tsconfig.lib.json');
try {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', tsconfig], { cwd: root, stdio: 'inherit' });
} catch {
  console.error(`${name}: type check failed`);
  process.exit(1);
}
console.log(`compiled ${kind}/${name} in ${Date.now() - started} ms`);
if (kind === 'libs') process.exit(0);

const outTsc = path.join(root, 'dist/out-tsc');
const workspaceLibs = {
  name: 'workspace-libs',
  setup(b) {
    b.onResolve({ filter: /^@flexmig\// }, (args) => ({ path: path.join(outTsc, 'libs', args.path.slice('@flexmig/'.length), 'index.js') }));
  },
};

const t = Date.now();
const srcDir = path.join(projectDir, 'src');
const appOut = path.join(outTsc, 'apps', name);
const outdir = path.join(root, 'dist/apps', name);
rmSync(outdir, { recursive: true, force: true });
// main.ts, plus any other entry named *-main.ts (the agent's fleet-main.ts becomes dist/apps/agent/fleet.js)
const entries = findFiles(srcDir, /-main\.ts$/).map((f) => ({
  in: path.join(appOut, path.relative(srcDir, f)).replace(/\.ts$/, '.js'),
  out: path.basename(f).replace(/-main\.ts$/, ''),
}));
await build({
  absWorkingDir: root,
  entryPoints: [{ in: path.join(appOut, 'main.js'), out: 'main' }, ...entries],
  outdir,
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
for (const asset of findFiles(srcDir, /\.S$/)) copyFileSync(asset, path.join(outdir, path.basename(asset)));
console.log(`bundled dist/apps/${name}/{${['main', ...entries.map((e) => e.out)].join(',')}}.js in ${Date.now() - t} ms`);

function findFiles(dir, pattern) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? findFiles(path.join(dir, e.name), pattern) : pattern.test(e.name) ? [path.join(dir, e.name)] : [],
  );
}

// Builds the web console (apps/console-web) into dist/apps/console-web, which apps/console serves at `/`:
// `node tools/build-web.mjs` (Nx runs it as console-web's `build` target).
//
// 1. `tsc -p apps/console-web/tsconfig.json` type-checks the browser code (DOM, JSX); it emits nothing.
// 2. esbuild bundles src/main.tsx with React and PatternFly, minified, into assets/ with a content hash in
//    every name (main-HASH.js, main-HASH.css, the fonts and images the CSS points at), so the console can
//    let browsers cache them for good; index.html, which names them, is written last and never cached.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const projectDir = path.join(root, 'apps/console-web');
const outdir = path.join(root, 'dist/apps/console-web');

const started = Date.now();
try {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(projectDir, 'tsconfig.json')], { cwd: root, stdio: 'inherit' });
} catch {
  console.error('console-web: type check failed');
  process.exit(1);
}
console.log(`type-checked apps/console-web in ${Date.now() - started} ms`);

const t = Date.now();
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: [path.join(projectDir, 'src/main.tsx')],
  outdir,
  entryNames: 'assets/[name]-[hash]',
  assetNames: 'assets/[name]-[hash]',
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  define: { 'process.env.NODE_ENV': '"production"' },
  loader: { '.woff': 'file', '.woff2': 'file', '.ttf': 'file', '.eot': 'file', '.svg': 'file', '.png': 'file', '.jpg': 'file', '.gif': 'file' },
  metafile: true,
  logLevel: 'warning',
});
const outputs = Object.keys(result.metafile.outputs).map((f) => path.relative(outdir, path.join(root, f)));
const js = outputs.find((f) => /^assets\/main-[^/]+\.js$/.test(f));
const css = outputs.find((f) => /^assets\/main-[^/]+\.css$/.test(f));
if (!js || !css) throw new Error(`esbuild wrote no main js/css: ${outputs.join(', ')}`);
const html = readFileSync(path.join(projectDir, 'index.html'), 'utf8').replace('/assets/main.css', `/${css}`).replace('/assets/main.js', `/${js}`);
writeFileSync(path.join(outdir, 'index.html'), html);
const kib = (f) => Math.round(result.metafile.outputs[path.relative(root, path.join(outdir, f))].bytes / 1024);
console.log(`bundled dist/apps/console-web (${js} ${kib(js)} KiB, ${css} ${kib(css)} KiB) in ${Date.now() - t} ms`);

// Bundles one app into dist/apps/<app>/main.js.
//
// Why esbuild with a TypeScript transform instead of webpack: NestJS's dependency injection needs
// `emitDecoratorMetadata`, which esbuild cannot emit on its own; TypeScript's transpileModule can, per
// file. esbuild then resolves the `@flexmig/*` path aliases from tsconfig.base.json and bundles the
// workspace's own code, while every npm package stays external (installed by `npm ci`).
// Type checking is a separate step (`npm run typecheck`), as in Nx's own node builds.
import { build } from 'esbuild';
import ts from 'typescript';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const app = process.argv[2];
if (!app) {
  console.error('usage: node tools/build.mjs <app>');
  process.exit(2);
}

const compilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  useDefineForClassFields: false,
  sourceMap: false,
  inlineSourceMap: true,
  inlineSources: true,
};

const decoratorMetadata = {
  name: 'ts-decorator-metadata',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const out = ts.transpileModule(source, { compilerOptions, fileName: args.path });
      return { contents: out.outputText, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

const started = Date.now();
await build({
  absWorkingDir: root,
  entryPoints: [`apps/${app}/src/main.ts`],
  outfile: `dist/apps/${app}/main.js`,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  packages: 'external',
  tsconfig: 'tsconfig.base.json',
  sourcemap: 'inline',
  keepNames: true,
  logLevel: 'warning',
  plugins: [decoratorMetadata],
});
console.log(`built dist/apps/${app}/main.js in ${Date.now() - started} ms`);

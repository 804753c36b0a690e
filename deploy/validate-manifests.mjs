#!/usr/bin/env node
// Validates Kubernetes objects against the Kubernetes schemas of the pinned `kubernetes-models` (and
// `@kubernetes-models/prometheus-operator` for ServiceMonitor, PodMonitor, PrometheusRule), two ways:
//   1. the models' JSON-schema validators: types, formats, required fields, enums;
//   2. unknown fields, which those schemas let through: every object is type-checked by the TypeScript
//      compiler as an object literal of its model's interface, where an excess property is an error.
// Input on stdin: JSON [{ "source": "<where it came from>", "object": { ...a Kubernetes object } }, ...].
// Output on stdout: JSON [{ "source", "kind", "name", "error" }] (empty when every object is valid).
// A kind without a model is an error too: nothing passes unchecked.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const ts = require('typescript');

/** The module of a kind's model: kubernetes-models/<group>/<version>/<Kind>, the core group as v1/<Kind>. */
function modelModule(apiVersion, kind) {
  if (apiVersion.startsWith('monitoring.coreos.com/')) return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

async function schemaErrors(item) {
  const { apiVersion, kind } = item.object;
  let mod;
  try {
    mod = await import(modelModule(apiVersion, kind));
  } catch {
    return `no model for ${apiVersion} ${kind}`;
  }
  try {
    new mod[kind](item.object).validate();
    return undefined;
  } catch (e) {
    return e.message;
  }
}

/** Unknown fields (and wrong types), by the TypeScript compiler's excess-property check on object literals. */
function unknownFieldErrors(items) {
  const file = path.join(root, 'deploy', '__rendered_objects__.ts');
  const lines = [];
  const imports = new Map();
  items.forEach((item, i) => {
    const { apiVersion, kind } = item.object;
    const spec = modelModule(apiVersion, kind);
    if (!imports.has(spec)) imports.set(spec, `M${imports.size}`);
    lines.push(`// item ${i}\nexport const o${i}: import('${spec}').I${kind} = ${JSON.stringify(item.object)};`);
  });
  const text = lines.join('\n');
  const options = { strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: [] };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) => (path.resolve(name) === file ? ts.createSourceFile(name, text, lang) : getSourceFile(name, lang, ...rest));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => path.resolve(name) === file || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (path.resolve(name) === file ? text : readFile(name));
  const program = ts.createProgram([file], options, host);
  const errors = new Map();
  for (const d of ts.getPreEmitDiagnostics(program)) {
    if (!d.file || path.resolve(d.file.fileName) !== file) {
      errors.set(-1, `${errors.get(-1) ?? ''}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}\n`);
      continue;
    }
    const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
    const index = Number(/^\/\/ item (\d+)$/.exec(text.split('\n')[line - 1] ?? '')?.[1] ?? -1);
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    errors.set(index, errors.has(index) ? `${errors.get(index)}; ${message}` : message);
  }
  return errors;
}

const items = JSON.parse(readFileSync(0, 'utf8'));
const problems = [];
for (const [i, item] of items.entries()) {
  const error = await schemaErrors(item);
  if (error) problems.push({ source: item.source, kind: item.object.kind, name: item.object.metadata?.name, index: i, error });
}
const modelled = items.map((item, i) => ({ item, i })).filter(({ i }) => !problems.some((p) => p.index === i && p.error.startsWith('no model')));
for (const [index, error] of unknownFieldErrors(modelled.map(({ item }) => item))) {
  const original = index < 0 ? undefined : modelled[index];
  problems.push({ source: original?.item.source ?? 'the TypeScript program', kind: original?.item.object.kind, name: original?.item.object.metadata?.name, error });
}
process.stdout.write(JSON.stringify(problems.map((p) => ({ source: p.source, kind: p.kind, name: p.name, error: p.error })), null, 2) + '\n');

import { z } from 'zod';
import { defineRequest } from './define';
import { VendorSchema } from './common';

export const CpuidRowSchema = z.object({
  leaf: z.union([z.number().int().min(0), z.string()]),
  subleaf: z.union([z.number().int().min(0), z.string()]).default(0),
  eax: z.union([z.number().int().min(0), z.string()]),
  ebx: z.union([z.number().int().min(0), z.string()]),
  ecx: z.union([z.number().int().min(0), z.string()]),
  edx: z.union([z.number().int().min(0), z.string()]),
});
export type CpuidRow = z.infer<typeof CpuidRowSchema>;

/** A host's CPU in one of three forms. */
export const EvaluateCpuSchema = z.union([
  z.object({ cpuinfo: z.string().min(1, 'cpuinfo is empty') }).strict(),
  z.object({ cpuid: z.array(CpuidRowSchema).min(1, 'cpuid has no rows') }).strict(),
  z.object({ features: z.array(z.string().min(1)), vendor: VendorSchema.optional() }).strict(),
]);
export type EvaluateCpu = z.infer<typeof EvaluateCpuSchema>;

export const LadderEntrySchema = z.object({
  mode: z.string(),
  supported: z.boolean(),
  missing: z.array(z.string()),
});

export const CpuEvaluationSchema = z.object({
  vendor: VendorSchema,
  modelName: z.string().optional(),
  features: z.array(z.string()),
  maxImcMode: z.string().nullable(),
  ladder: z.array(LadderEntrySchema),
});
export type CpuEvaluation = z.infer<typeof CpuEvaluationSchema>;

export const EvaluateCpuRequest = defineRequest({
  subject: 'cpu.evaluate',
  description: 'Evaluates a host CPU: vendor, features, highest supported baseline (IMC mode).',
  request: EvaluateCpuSchema,
  reply: CpuEvaluationSchema,
});

export const VerdictRequestSchema = z.object({
  baseline: z.string().min(1),
  target: z.object({ vendor: VendorSchema, features: z.array(z.string()) }),
});
export const VerdictSchema = z.object({
  compatible: z.boolean(),
  baseline: z.string(),
  missing: z.array(z.string()),
  vendorMismatch: z.boolean(),
  reason: z.string(),
});
export type Verdict = z.infer<typeof VerdictSchema>;

export const CpuVerdict = defineRequest({
  subject: 'cpu.verdict',
  description: 'Saga step 1: may a VM with this baseline run on the target host?',
  request: VerdictRequestSchema,
  reply: VerdictSchema,
});

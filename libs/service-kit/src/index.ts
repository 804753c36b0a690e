export * from './env';
export * from './errors.filter';
export * from './zod';
export * from './health';
export * from './bootstrap';
export * from './http';
export * from './auth';
export * from './observability';

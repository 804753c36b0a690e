export * from './zod-arbitrary';
export * from './inputs';
export * from './targets';
export * from './stack';
export * from './runner';
export * from './describe-fuzz';

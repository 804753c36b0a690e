export * from './database';
export * from './pagination';

export * from './database';
export * from './pagination';
export * from './prepared';
export * from './timestamps';

export * from './infra';
export * from './processes';
export * from './servers';
export * from './auth';
export * from './route-auth';
export * from './fuzz';

export { apiSchema, componentName } from './components';
export * from './document';
export * from './merge';

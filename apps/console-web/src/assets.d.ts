// Stylesheets are imported for their side effect: esbuild bundles them into main-HASH.css.
declare module '*.css';

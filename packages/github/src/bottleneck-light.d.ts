// bottleneck ships types for its main entry only; `light.js` is the same class without the Redis
// clustering code (which loads `redis` through eval, something bundlers warn about). The Octokit
// plugins use `light.js` too.
declare module 'bottleneck/light.js' {
  import Bottleneck from 'bottleneck';
  export default Bottleneck;
}

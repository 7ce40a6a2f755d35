import { describeUpstreamSuite } from '../helpers/kurento-client-upstream-suite';

/**
 * kurento-client's own test suite against a real `bin/ferry media` (test/helpers/kurento-client-upstream-suite.ts
 * says how), every file but `waiting.js`, which test/integration/media-kurento-client-upstream-waiting.test.ts
 * runs at the same time (it waits two minutes).
 */
describeUpstreamSuite('all-but-waiting');

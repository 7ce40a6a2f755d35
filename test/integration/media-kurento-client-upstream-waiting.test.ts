import { describeUpstreamSuite } from '../helpers/kurento-client-upstream-suite';

/**
 * kurento-client's upstream `waiting.js` against a real `bin/ferry media`: one test that waits two minutes
 * and asks for its pipeline again. On its own so it runs beside the rest of the suite
 * (test/integration/media-kurento-client-upstream-suite.test.ts) instead of after it.
 */
describeUpstreamSuite('waiting');

import { gatewayCallScenarios } from '../helpers/gateway-call-scenarios';

gatewayCallScenarios('memory');

/**
 * The reason phrase of ferry sip's own `503` to a new request for which it has no connection and could
 * open none: a Contact reached only over the connection its device registered over (a webphone's
 * `.invalid` host, a `transport=ws` Contact) when ferry sip holds no such connection, or a TCP/TLS next
 * hop that refused or failed the connection. Nothing was sent to the device. The status stays `503`, as
 * drachtio-server answers; the phrase lets the gateway tell it from a device's own `503`
 * (docs/gateway.md, "Bindings that live on a connection").
 */
export const NO_CONNECTION_REASON = 'Service Unavailable (no connection)';

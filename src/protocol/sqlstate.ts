/** The SQLSTATEs pgmux itself sends (https://www.postgresql.org/docs/current/errcodes-appendix.html). */
export const SqlState = {
  ConnectionFailure: '08006',
  ProtocolViolation: '08P01',
  FeatureNotSupported: '0A000',
  InvalidAuthorizationSpecification: '28000',
  SyntaxError: '42601',
  UndefinedObject: '42704',
  InvalidPassword: '28P01',
  InvalidCatalogName: '3D000',
  TooManyConnections: '53300',
  QueryCanceled: '57014',
  AdminShutdown: '57P01',
  CannotConnectNow: '57P03',
  InternalError: 'XX000',
} as const;

export type SqlStateCode = (typeof SqlState)[keyof typeof SqlState];

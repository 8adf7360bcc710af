//! Elasticsearch's spellings: the audit timestamp and the request names.

use tessera_domain::privilege::Action;
use tessera_domain::Millis;

/// `2020-12-30T22:30:06,949+0000`: Elasticsearch's audit timestamp, in UTC.
pub fn timestamp(at: Millis) -> String {
    let ms = at.rem_euclid(1000);
    let secs = at.div_euclid(1000);
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02},{ms:03}+0000",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60
    )
}

/// The proleptic Gregorian date of a day count from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The name of the request class Elasticsearch's audit log gives for
/// `action` (`request.name`).
pub fn request_name(action: Action) -> &'static str {
    match action {
        Action::TokenCreate | Action::TokenRefresh => "CreateTokenRequest",
        Action::TokenInvalidate => "InvalidateTokenRequest",
        Action::UserPut => "PutUserRequest",
        Action::UserGet => "GetUsersRequest",
        Action::UserDelete => "DeleteUserRequest",
        Action::UserChangePassword => "ChangePasswordRequest",
        Action::UserSetEnabled => "SetEnabledRequest",
        Action::RolePut => "PutRoleRequest",
        Action::RoleGet => "GetRolesRequest",
        Action::BuiltinPrivilegesGet => "GetBuiltinPrivilegesRequest",
        Action::PrivilegePut => "PutPrivilegesRequest",
        Action::PrivilegeGet => "GetPrivilegesRequest",
        Action::PrivilegeDelete => "DeletePrivilegesRequest",
        Action::HasPrivilegesOfOther => "HasPrivilegesRequest",
        Action::RoleDelete => "DeleteRoleRequest",
        Action::ApiKeyCreate => "CreateApiKeyRequest",
        Action::ApiKeyGet => "GetApiKeyRequest",
        Action::ApiKeyInvalidate | Action::ApiKeyManageOwn => "InvalidateApiKeyRequest",
        Action::ApiKeyGrant => "GrantApiKeyRequest",
        Action::ApiKeyUpdate => "UpdateApiKeyRequest",
        Action::ApiKeyBulkUpdate => "BulkUpdateApiKeyRequest",
        Action::ApiKeyQuery => "QueryApiKeyRequest",
        Action::UserQuery => "QueryUserRequest",
        Action::OAuthClientManage => "OAuthClientRequest",
        Action::TokenIntrospect => "IntrospectTokenRequest",
        Action::MetricsRead => "MetricsRequest",
        Action::RoleMappingPut => "PutRoleMappingRequest",
        Action::RoleMappingGet => "GetRoleMappingsRequest",
        Action::RoleMappingDelete => "DeleteRoleMappingRequest",
        Action::SamlPrepare => "SamlPrepareAuthenticationRequest",
        Action::SamlAuthenticate => "SamlAuthenticateRequest",
        Action::SamlLogout => "SamlLogoutRequest",
        Action::SamlInvalidate => "SamlInvalidateSessionRequest",
        Action::SamlCompleteLogout => "SamlCompleteLogoutRequest",
        Action::SamlMetadata => "SamlSpMetadataRequest",
        Action::OidcPrepare => "OpenIdConnectPrepareAuthenticationRequest",
        Action::OidcAuthenticate => "OpenIdConnectAuthenticateRequest",
        Action::OidcLogout => "OpenIdConnectLogoutRequest",
        Action::ServiceAccountGet => "GetServiceAccountRequest",
        Action::ServiceTokenCreate => "CreateServiceAccountTokenRequest",
        Action::ServiceTokenDelete => "DeleteServiceAccountTokenRequest",
        Action::ServiceCredentialsGet => "GetServiceAccountCredentialsRequest",
    }
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn timestamps_as_elasticsearch_writes_them() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00,000+0000");
        assert_eq!(timestamp(1_609_366_206_949), "2020-12-30T22:10:06,949+0000");
        assert_eq!(timestamp(951_782_400_001), "2000-02-29T00:00:00,001+0000");
    }
}

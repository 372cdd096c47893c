//! The Kubernetes CEL libraries (`k8s.io/apiserver/pkg/cel/library`), registered as functions
//! on the `cel` crate's environment rather than interpreted by hand:
//! - regex (`regex.go`): `matches` with RE2 semantics, `find`, `findAll`;
//! - URLs (`urls.go`): `url`, `isURL`, `getScheme`, `getHost`, `getHostname`, `getPort`,
//!   `getEscapedPath`, `getQuery`, parsed as Go's `net/url` does;
//! - IPs and CIDRs (`ip.go`, `cidr.go`): `ip`, `isIP`, `ip.isCanonical`, `family`, the
//!   `is*` address classes, `cidr`, `isCIDR`, `prefixLength`, `containsIP`, `containsCIDR`,
//!   `masked`;
//! - lists (`lists.go`): `isSorted`, `sum`, `min`, `max`;
//! - quantities (`quantity.go`): `quantity`, `isQuantity`, `sign`, `isInteger`, `asInteger`,
//!   `asApproximateFloat`, `add`, `sub`, `isGreaterThan`, `isLessThan`, `compareTo`;
//! - formats (`format.go`): `format.named` and `format.<name>()` with `validate`.

use std::any::Any;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::IpAddr;

use cel::common::types::{self, CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelOptional, CelString, Type};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::re2;
use crate::kube::names;

type Args<'b, 'v> = Vec<CowVal<'b, 'v>>;
type Ret<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

macro_rules! opaque {
    ($t:ty, $ty:ident, $name:literal) => {
        static $ty: Type = Type::new_unspecified_type($name);
        impl Val for $t {
            fn get_type(&self) -> &Type {
                &$ty
            }
            fn cel_type() -> &'static Type {
                &$ty
            }
            fn equals(&self, other: &dyn Val) -> bool {
                other.downcast_ref::<$t>().is_some_and(|o| o == self)
            }
            fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
                Box::new(self.clone())
            }
            fn as_any(&self) -> Option<&dyn Any> {
                Some(self)
            }
        }
        impl StaticVal for $t {}
    };
}

/// A parsed URL (`kubernetes.URL`).
#[derive(Debug, Clone, PartialEq)]
pub struct Url {
    scheme: String,
    host: String,
    path: String,
    raw_query: String,
}
opaque!(Url, URL_TYPE, "kubernetes.URL");

/// An IP address (`net.IP`).
#[derive(Debug, Clone, PartialEq)]
pub struct Ip(IpAddr);
opaque!(Ip, IP_TYPE, "net.IP");

/// A CIDR (`net.CIDR`): the address as written and the prefix length.
#[derive(Debug, Clone, PartialEq)]
pub struct Cidr(IpAddr, u8);
opaque!(Cidr, CIDR_TYPE, "net.CIDR");

/// A resource quantity (`kubernetes.Quantity`): `mantissa × 10^exp10`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    mantissa: i128,
    exp10: i32,
}
opaque!(Quantity, QUANTITY_TYPE, "kubernetes.Quantity");

/// A named format of the format library (`kubernetes.NamedFormat`).
#[derive(Debug, Clone, PartialEq)]
pub struct Format(&'static str);
opaque!(Format, FORMAT_TYPE, "kubernetes.NamedFormat");

fn err(function: &str, message: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

fn str_arg<'a>(args: &'a [CowVal<'_, '_>], i: usize, f: &str) -> Result<&'a str, ExecutionError> {
    args.get(i)
        .and_then(|v| v.downcast_ref::<CelString>())
        .map(CelString::inner)
        .ok_or_else(|| err(f, "expected a string argument"))
}

fn arg<'a, T>(args: &'a [CowVal<'_, '_>], i: usize, f: &str) -> Result<&'a T, ExecutionError>
where
    T: 'static + for<'x> cel::common::value::FromVal<'a, 'x>,
{
    args.get(i)
        .and_then(|v| v.downcast_ref::<T>())
        .ok_or_else(|| err(f, "unexpected argument type"))
}

fn owned<'b, 'v>(v: impl Val + 'static) -> Ret<'b, 'v> {
    Ok(CowVal::owned(v))
}

fn string_list<'b, 'v>(items: Vec<String>) -> Ret<'b, 'v> {
    let v: Vec<Box<dyn Val + 'v>> = items
        .into_iter()
        .map(|s| Box::new(CelString::from(s)) as Box<dyn Val + 'v>)
        .collect();
    Ok(CowVal::owned(CelList::from(v)))
}

// ---------------------------------------------------------------------------------------------
// Regex
// ---------------------------------------------------------------------------------------------

fn matches<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let s = str_arg(&args, 0, "matches")?;
    let re = re2::compile(str_arg(&args, 1, "matches")?).map_err(|e| err("matches", e))?;
    owned(CelBool::from(re.is_match(s)))
}

fn find<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let s = str_arg(&args, 0, "find")?;
    let re = re2::compile(str_arg(&args, 1, "find")?).map_err(|e| err("find", e))?;
    owned(CelString::from(
        re.find(s).map(|m| m.as_str().to_string()).unwrap_or_default(),
    ))
}

fn find_all<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let s = str_arg(&args, 0, "findAll")?;
    let re = re2::compile(str_arg(&args, 1, "findAll")?).map_err(|e| err("findAll", e))?;
    let limit = match args.get(2).and_then(|v| v.downcast_ref::<CelInt>()) {
        Some(n) if *n.inner() >= 0 => usize::try_from(*n.inner()).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    string_list(re.find_iter(s).take(limit).map(|m| m.as_str().to_string()).collect())
}

// ---------------------------------------------------------------------------------------------
// URLs: Go's url.ParseRequestURI (absolute URI or absolute path), then url.Parse
// ---------------------------------------------------------------------------------------------

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit() {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((addr, port)) = rest.split_once(']') else {
            return false;
        };
        if addr
            .split('%')
            .next()
            .and_then(|a| a.parse::<std::net::Ipv6Addr>().ok())
            .is_none()
        {
            return false;
        }
        ("", port)
    } else {
        match host.rfind(':') {
            Some(i) => (&host[..i], &host[i..]),
            None => (host, ""),
        }
    };
    if !(port.is_empty() || port.starts_with(':') && port[1..].bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b) || b >= 0x80)
}

/// Go's `url.ParseRequestURI` followed by `url.Parse`, reduced to the parts the library
/// exposes.
pub fn parse_url(s: &str) -> Result<Url, String> {
    if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(format!("parse {s:?}: net/url: invalid control character in URL"));
    }
    let (scheme, rest) = match s.find(':') {
        Some(0) => return Err(format!("parse {s:?}: missing protocol scheme")),
        Some(i)
            if s[..i].bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && s[..i].bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            (s[..i].to_ascii_lowercase(), &s[i + 1..])
        }
        _ => (String::new(), s),
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, f),
        None => (rest, ""),
    };
    let (rest, raw_query) = match rest.split_once('?') {
        Some((r, q)) => (r, q.to_string()),
        None => (rest, String::new()),
    };
    if scheme.is_empty() && !rest.starts_with('/') {
        return Err(format!("parse {s:?}: invalid URI for request"));
    }
    let (host, path) = if let Some(auth_and_path) = rest.strip_prefix("//") {
        let end = auth_and_path.find('/').unwrap_or(auth_and_path.len());
        let authority = &auth_and_path[..end];
        let host = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
        if !valid_host(host) {
            return Err(format!("parse {s:?}: invalid character in host name"));
        }
        (host.to_string(), auth_and_path[end..].to_string())
    } else {
        (String::new(), rest.to_string())
    };
    if !valid_escapes(&path) || !valid_escapes(fragment) {
        return Err(format!("parse {s:?}: invalid URL escape"));
    }
    Ok(Url {
        scheme,
        host,
        path,
        raw_query,
    })
}

fn url<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let s = str_arg(&args, 0, "url")?;
    let u = parse_url(s).map_err(|e| err("url", format!("URL parse error during conversion from string: {e}")))?;
    owned(u)
}

fn is_url<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    owned(CelBool::from(parse_url(str_arg(&args, 0, "isURL")?).is_ok()))
}

fn hostname(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

fn port(host: &str) -> &str {
    let tail = if host.starts_with('[') {
        host.rsplit_once(']').map_or("", |(_, p)| p)
    } else {
        host.rfind(':').map_or("", |i| &host[i..])
    };
    tail.strip_prefix(':').unwrap_or("")
}

fn url_part<'b, 'v>(args: &Args<'b, 'v>, f: &str, pick: fn(&Url) -> String) -> Ret<'b, 'v> {
    let u = arg::<Url>(args, 0, f)?;
    owned(CelString::from(pick(u)))
}

fn get_scheme<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    url_part(&args, "getScheme", |u| u.scheme.clone())
}
fn get_host<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    url_part(&args, "getHost", |u| u.host.clone())
}
fn get_hostname<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    url_part(&args, "getHostname", |u| hostname(&u.host).to_string())
}
fn get_port<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    url_part(&args, "getPort", |u| port(&u.host).to_string())
}
fn get_escaped_path<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    url_part(&args, "getEscapedPath", |u| u.path.clone())
}

fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn get_query<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let u = arg::<Url>(&args, 0, "getQuery")?;
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for pair in u.raw_query.split('&').filter(|p| !p.is_empty() && !p.contains(';')) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if let (Some(k), Some(v)) = (unescape(k), unescape(v)) {
            m.entry(k).or_default().push(v);
        }
    }
    let map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = m
        .into_iter()
        .map(|(k, vs)| {
            let list: Vec<Box<dyn Val + 'v>> = vs
                .into_iter()
                .map(|v| Box::new(CelString::from(v)) as Box<dyn Val + 'v>)
                .collect();
            (CelMapKey::from(k), Box::new(CelList::from(list)) as Box<dyn Val + 'v>)
        })
        .collect();
    Ok(CowVal::owned(CelMap::from(map)))
}

// ---------------------------------------------------------------------------------------------
// IPs and CIDRs: netip.ParseAddr / ParsePrefix, without zones or IPv4-mapped IPv6
// ---------------------------------------------------------------------------------------------

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    if s.contains('%') {
        return Err(format!("IP address with zone value is not allowed: {s}"));
    }
    let ip: IpAddr = s
        .parse()
        .map_err(|_| format!("IP Address {s:?} parse error during conversion from string"))?;
    if let IpAddr::V6(v6) = ip
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(format!("IPv4-mapped IPv6 address {s:?} is not allowed"));
    }
    Ok(ip)
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("network address parse error during conversion from string: no '/' in {s:?}"))?;
    let ip = parse_ip(a).map_err(|e| format!("network address parse error during conversion from string: {e}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits: u8 = p
        .parse()
        .ok()
        .filter(|b| *b <= max && (p == "0" || !p.starts_with('0')))
        .ok_or_else(|| {
            format!("network address parse error during conversion from string: bad bits after slash: {p:?}")
        })?;
    Ok(Cidr(ip, bits))
}

fn ip<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    if let Ok(c) = arg::<Cidr>(&args, 0, "ip") {
        return owned(Ip(c.0));
    }
    owned(Ip(parse_ip(str_arg(&args, 0, "ip")?).map_err(|e| err("ip", e))?))
}

fn is_ip<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    owned(CelBool::from(parse_ip(str_arg(&args, 0, "isIP")?).is_ok()))
}

fn ip_is_canonical<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let s = str_arg(&args, 0, "ip.isCanonical")?;
    let ip = parse_ip(s).map_err(|e| err("ip.isCanonical", e))?;
    owned(CelBool::from(ip.to_string() == s))
}

fn ip_test<'b, 'v>(args: &Args<'b, 'v>, f: &str, test: fn(&IpAddr) -> bool) -> Ret<'b, 'v> {
    owned(CelBool::from(test(&arg::<Ip>(args, 0, f)?.0)))
}

fn family<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let ip = arg::<Ip>(&args, 0, "family")?;
    owned(CelInt::from(if ip.0.is_ipv4() { 4 } else { 6 }))
}
fn is_unspecified<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    ip_test(&args, "isUnspecified", IpAddr::is_unspecified)
}
fn is_loopback<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    ip_test(&args, "isLoopback", IpAddr::is_loopback)
}
fn is_link_local_multicast<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    ip_test(&args, "isLinkLocalMulticast", |ip| match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.segments()[0] & 0xff0f == 0xff02,
    })
}
fn is_link_local_unicast<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    ip_test(&args, "isLinkLocalUnicast", |ip| match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    })
}
fn is_global_unicast<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    // Go's IP.IsGlobalUnicast: not unspecified, loopback, multicast, link-local or the
    // IPv4 broadcast address.
    ip_test(&args, "isGlobalUnicast", |ip| match ip {
        IpAddr::V4(v4) => {
            !v4.is_unspecified() && !v4.is_loopback() && !v4.is_multicast() && !v4.is_link_local() && !v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            !v6.is_unspecified() && !v6.is_loopback() && !v6.is_multicast() && v6.segments()[0] & 0xffc0 != 0xfe80
        }
    })
}

fn cidr<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    owned(parse_cidr(str_arg(&args, 0, "cidr")?).map_err(|e| err("cidr", e))?)
}

fn is_cidr<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    owned(CelBool::from(parse_cidr(str_arg(&args, 0, "isCIDR")?).is_ok()))
}

fn prefix_length<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    owned(CelInt::from(i64::from(arg::<Cidr>(&args, 0, "prefixLength")?.1)))
}

fn masked_addr(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

fn contains(c: &Cidr, ip: IpAddr) -> bool {
    c.0.is_ipv4() == ip.is_ipv4() && masked_addr(c.0, c.1) == masked_addr(ip, c.1)
}

fn contains_ip<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let c = arg::<Cidr>(&args, 0, "containsIP")?;
    let ip = match arg::<Ip>(&args, 1, "containsIP") {
        Ok(ip) => ip.0,
        Err(_) => parse_ip(str_arg(&args, 1, "containsIP")?).map_err(|e| err("containsIP", e))?,
    };
    owned(CelBool::from(contains(c, ip)))
}

fn contains_cidr<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let c = arg::<Cidr>(&args, 0, "containsCIDR")?;
    let other = match arg::<Cidr>(&args, 1, "containsCIDR") {
        Ok(o) => o.clone(),
        Err(_) => parse_cidr(str_arg(&args, 1, "containsCIDR")?).map_err(|e| err("containsCIDR", e))?,
    };
    owned(CelBool::from(other.1 >= c.1 && contains(c, other.0)))
}

fn masked<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let c = arg::<Cidr>(&args, 0, "masked")?;
    owned(Cidr(masked_addr(c.0, c.1), c.1))
}

// ---------------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------------

fn elements<'a, 'b, 'v>(list: &'a CowVal<'b, 'v>, f: &str) -> Result<Vec<&'a (dyn Val + 'v)>, ExecutionError> {
    let it = list.as_iterable().ok_or_else(|| err(f, "expected a list"))?;
    let mut iter = it.iter();
    let mut out = Vec::new();
    while let Some(v) = iter.next() {
        out.push(v);
    }
    Ok(out)
}

fn compare(a: &dyn Val, b: &dyn Val, f: &str) -> Result<Ordering, ExecutionError> {
    a.as_comparer()
        .ok_or_else(|| err(f, "elements are not comparable"))?
        .compare(b)
}

fn is_sorted<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let items = elements(&args[0], "isSorted")?;
    for w in items.windows(2) {
        if compare(w[0], w[1], "isSorted")? == Ordering::Greater {
            return owned(CelBool::from(false));
        }
    }
    owned(CelBool::from(true))
}

fn sum<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let items = elements(&args[0], "sum")?;
    let mut int_total: i64 = 0;
    let mut float_total = 0.0;
    let mut any_float = false;
    for v in items {
        if let Some(i) = v.downcast_ref::<CelInt>() {
            int_total = int_total
                .checked_add(*i.inner())
                .ok_or_else(|| err("sum", "integer overflow"))?;
        } else if let Some(d) = v.downcast_ref::<CelDouble>() {
            any_float = true;
            float_total += d.inner();
        } else {
            return Err(err("sum", "elements must be numbers"));
        }
    }
    if any_float {
        owned(CelDouble::from(float_total + int_total as f64))
    } else {
        owned(CelInt::from(int_total))
    }
}

fn extreme<'b, 'v>(args: Args<'b, 'v>, f: &str, want: Ordering) -> Ret<'b, 'v> {
    let items = elements(&args[0], f)?;
    let mut best: Option<&(dyn Val + 'v)> = None;
    for v in items {
        best = match best {
            None => Some(v),
            Some(b) if compare(v, b, f)? == want => Some(v),
            keep => keep,
        };
    }
    let best = best.ok_or_else(|| err(f, "list is empty"))?;
    Ok(CowVal::Owned(best.clone_as_boxed()))
}

fn min<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    extreme(args, "min", Ordering::Less)
}
fn max<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    extreme(args, "max", Ordering::Greater)
}

// ---------------------------------------------------------------------------------------------
// Quantities (k8s.io/apimachinery/pkg/api/resource)
// ---------------------------------------------------------------------------------------------

/// `resource.ParseQuantity`: a signed decimal number and a suffix, binary (`Ki`..`Ei`),
/// decimal (`n`, `u`, `m`, ``, `k`, `M`..`E`) or an exponent (`e3`, `E-2`).
pub fn parse_quantity(s: &str) -> Result<Quantity, String> {
    let bad = || {
        format!("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {s:?}")
    };
    let num_end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    let (neg, digits) = match num.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, num.strip_prefix('+').unwrap_or(num)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let all: String = format!("{int_part}{frac_part}");
    let mut mantissa: i128 = all.parse::<i128>().map_err(|_| bad())?;
    let mut exp10 = -i32::try_from(frac_part.len()).map_err(|_| bad())?;
    let binary = |k: u32| -> Result<(i128, i32), String> {
        let factor = 1024i128.checked_pow(k).ok_or_else(bad)?;
        Ok((factor, 0))
    };
    let (factor, e) = match suffix {
        "" => (1, 0),
        "Ki" => binary(1)?,
        "Mi" => binary(2)?,
        "Gi" => binary(3)?,
        "Ti" => binary(4)?,
        "Pi" => binary(5)?,
        "Ei" => binary(6)?,
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        other if other.starts_with(['e', 'E']) => (1, other[1..].parse::<i32>().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    mantissa = mantissa.checked_mul(factor).ok_or_else(bad)?;
    exp10 += e;
    if neg {
        mantissa = -mantissa;
    }
    Ok(Quantity { mantissa, exp10 })
}

impl Quantity {
    fn scaled(&self, exp10: i32) -> Option<i128> {
        let shift = u32::try_from(self.exp10 - exp10).ok()?;
        self.mantissa.checked_mul(10i128.checked_pow(shift)?)
    }

    fn cmp(&self, o: &Quantity) -> Ordering {
        let e = self.exp10.min(o.exp10);
        match (self.scaled(e), o.scaled(e)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.as_f64().partial_cmp(&o.as_f64()).unwrap_or(Ordering::Equal),
        }
    }

    fn as_f64(&self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.exp10)
    }

    fn as_integer(&self) -> Option<i64> {
        if self.exp10 >= 0 {
            return self.scaled(0).and_then(|v| i64::try_from(v).ok());
        }
        let div = 10i128.checked_pow(u32::try_from(-self.exp10).ok()?)?;
        (self.mantissa % div == 0)
            .then(|| i64::try_from(self.mantissa / div).ok())
            .flatten()
    }

    fn add(&self, o: &Quantity) -> Option<Quantity> {
        let e = self.exp10.min(o.exp10);
        Some(Quantity {
            mantissa: self.scaled(e)?.checked_add(o.scaled(e)?)?,
            exp10: e,
        })
    }
}

fn quantity<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    owned(parse_quantity(str_arg(&args, 0, "quantity")?).map_err(|e| err("quantity", e))?)
}

fn is_quantity<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    owned(CelBool::from(parse_quantity(str_arg(&args, 0, "isQuantity")?).is_ok()))
}

fn q(args: &[CowVal<'_, '_>], i: usize, f: &str) -> Result<Quantity, ExecutionError> {
    if let Ok(q) = arg::<Quantity>(args, i, f) {
        return Ok(q.clone());
    }
    match args.get(i).and_then(|v| v.downcast_ref::<CelInt>()) {
        Some(n) => Ok(Quantity {
            mantissa: i128::from(*n.inner()),
            exp10: 0,
        }),
        None => Err(err(f, "expected a quantity or an int")),
    }
}

fn sign<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    owned(CelInt::from(q(&args, 0, "sign")?.mantissa.signum() as i64))
}
fn is_integer<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    owned(CelBool::from(q(&args, 0, "isInteger")?.as_integer().is_some()))
}
fn as_integer<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let v = q(&args, 0, "asInteger")?
        .as_integer()
        .ok_or_else(|| err("asInteger", "cannot convert value to integer"))?;
    owned(CelInt::from(v))
}
fn as_approximate_float<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    owned(CelDouble::from(q(&args, 0, "asApproximateFloat")?.as_f64()))
}
fn q_add<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let r = q(&args, 0, "add")?
        .add(&q(&args, 1, "add")?)
        .ok_or_else(|| err("add", "quantity overflow"))?;
    owned(r)
}
fn q_sub<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let mut o = q(&args, 1, "sub")?;
    o.mantissa = -o.mantissa;
    let r = q(&args, 0, "sub")?
        .add(&o)
        .ok_or_else(|| err("sub", "quantity overflow"))?;
    owned(r)
}
fn is_greater_than<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    owned(CelBool::from(
        q(&args, 0, "isGreaterThan")?.cmp(&q(&args, 1, "isGreaterThan")?) == Ordering::Greater,
    ))
}
fn is_less_than<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    owned(CelBool::from(
        q(&args, 0, "isLessThan")?.cmp(&q(&args, 1, "isLessThan")?) == Ordering::Less,
    ))
}
fn compare_to<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let o = q(&args, 0, "compareTo")?.cmp(&q(&args, 1, "compareTo")?);
    owned(CelInt::from(o as i64))
}

// ---------------------------------------------------------------------------------------------
// Formats
// ---------------------------------------------------------------------------------------------

const FORMATS: &[&str] = &[
    "dns1123Label",
    "dns1123Subdomain",
    "dns1035Label",
    "qualifiedName",
    "dns1123LabelPrefix",
    "dns1123SubdomainPrefix",
    "dns1035LabelPrefix",
    "labelValue",
    "uri",
    "uuid",
    "byte",
    "date",
    "datetime",
];

fn format_errors(name: &str, s: &str) -> Vec<String> {
    let prefix = |s: &str| s.strip_suffix('-').unwrap_or(s).to_string();
    match name {
        "dns1123Label" => names::dns1123_label(s),
        "dns1123Subdomain" => names::dns1123_subdomain(s),
        "dns1035Label" => names::dns1035_label(s),
        "qualifiedName" => names::qualified_name(s),
        "dns1123LabelPrefix" => names::dns1123_label(&prefix(s)),
        "dns1123SubdomainPrefix" => names::dns1123_subdomain(&prefix(s)),
        "dns1035LabelPrefix" => names::dns1035_label(&prefix(s)),
        "labelValue" => names::label_value(s),
        "uri" => match parse_url(s) {
            Ok(_) => Vec::new(),
            Err(_) => vec!["invalid URI".to_string()],
        },
        "uuid" => {
            if uuid::Uuid::try_parse(s).is_ok() && s.len() == 36 {
                Vec::new()
            } else {
                vec!["does not match the UUID format".to_string()]
            }
        }
        "byte" => {
            use base64::Engine;
            if base64::engine::general_purpose::STANDARD.decode(s).is_ok() {
                Vec::new()
            } else {
                vec!["invalid base64".to_string()]
            }
        }
        "date" => match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(_) => Vec::new(),
            Err(_) => vec!["invalid date".to_string()],
        },
        "datetime" => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(_) => Vec::new(),
            Err(_) => vec!["invalid datetime".to_string()],
        },
        _ => vec![format!("unknown format {name:?}")],
    }
}

fn format_named<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let name = str_arg(&args, 0, "format.named")?;
    let found = FORMATS
        .iter()
        .find(|f| **f == name)
        .map(|f| Box::new(Format(f)) as Box<dyn Val + 'v>);
    Ok(CowVal::owned(CelOptional::from(found)))
}

fn validate<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let f = arg::<Format>(&args, 0, "validate")?;
    let errors = format_errors(f.0, str_arg(&args, 1, "validate")?);
    if errors.is_empty() {
        return Ok(CowVal::owned(CelOptional::none()));
    }
    let list: Vec<Box<dyn Val + 'v>> = errors
        .into_iter()
        .map(|e| Box::new(CelString::from(e)) as Box<dyn Val + 'v>)
        .collect();
    Ok(CowVal::owned(CelOptional::of(Box::new(CelList::from(list)))))
}

macro_rules! named_format {
    ($fn:ident, $name:literal) => {
        fn $fn<'b, 'v>(_args: Args<'b, 'v>) -> Ret<'b, 'v> {
            owned(Format($name))
        }
    };
}
named_format!(f_dns1123_label, "dns1123Label");
named_format!(f_dns1123_subdomain, "dns1123Subdomain");
named_format!(f_dns1035_label, "dns1035Label");
named_format!(f_qualified_name, "qualifiedName");
named_format!(f_label_value, "labelValue");
named_format!(f_uri, "uri");
named_format!(f_uuid, "uuid");
named_format!(f_byte, "byte");
named_format!(f_date, "date");
named_format!(f_datetime, "datetime");

// ---------------------------------------------------------------------------------------------
// Durations (Go's time.ParseDuration), for `format: duration` strings
// ---------------------------------------------------------------------------------------------

/// Go's `time.ParseDuration`: `300ms`, `-1.5h`, `2h45m`, `0`.
pub fn parse_go_duration(s: &str) -> Option<chrono::Duration> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total_ns += value * unit;
    }
    let ns = total_ns as i64;
    Some(chrono::Duration::nanoseconds(if neg { -ns } else { ns }))
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

/// Register every function of this module on `env`.
pub fn register(env: &mut Env) -> Result<(), String> {
    let e = |r: Result<(), DeclarationError>| r.map_err(|e| format!("{e:?}"));
    let s = types::STRING_TYPE.to_owned();
    let l = types::LIST_TYPE.to_owned();
    let dyn_ = types::DYN_TYPE.to_owned();
    for t in [&URL_TYPE, &IP_TYPE, &CIDR_TYPE, &QUANTITY_TYPE, &FORMAT_TYPE] {
        e(env.add_type(t.to_owned()))?;
    }
    // regex
    e(env.add_member_overload(
        "matches",
        "string_matches_string",
        s.to_owned(),
        vec![s.to_owned()],
        matches,
    ))?;
    e(env.add_overload(
        "matches",
        "matches_string_string",
        vec![s.to_owned(), s.to_owned()],
        matches,
    ))?;
    e(env.add_member_overload("find", "string_find_string", s.to_owned(), vec![s.to_owned()], find))?;
    e(env.add_member_overload(
        "findAll",
        "string_find_all_string",
        s.to_owned(),
        vec![s.to_owned()],
        find_all,
    ))?;
    e(env.add_member_overload(
        "findAll",
        "string_find_all_string_int",
        s.to_owned(),
        vec![s.to_owned(), types::INT_TYPE],
        find_all,
    ))?;
    // URLs
    e(env.add_overload("url", "string_to_url", vec![s.to_owned()], url))?;
    e(env.add_overload("isURL", "is_url_string", vec![s.to_owned()], is_url))?;
    let u = URL_TYPE.to_owned();
    for (name, f) in [
        ("getScheme", get_scheme as cel::common::functions::Function),
        ("getHost", get_host),
        ("getHostname", get_hostname),
        ("getPort", get_port),
        ("getEscapedPath", get_escaped_path),
        ("getQuery", get_query),
    ] {
        e(env.add_member_overload(name, &format!("url_{name}"), u.to_owned(), vec![], f))?;
    }
    // IPs and CIDRs
    e(env.add_overload("ip", "string_to_ip", vec![s.to_owned()], ip))?;
    e(env.add_member_overload("ip", "cidr_ip", CIDR_TYPE.to_owned(), vec![], ip))?;
    e(env.add_overload("isIP", "is_ip", vec![s.to_owned()], is_ip))?;
    e(env.add_overload("ip.isCanonical", "ip_is_canonical", vec![s.to_owned()], ip_is_canonical))?;
    let i = IP_TYPE.to_owned();
    for (name, f) in [
        ("family", family as cel::common::functions::Function),
        ("isUnspecified", is_unspecified),
        ("isLoopback", is_loopback),
        ("isLinkLocalMulticast", is_link_local_multicast),
        ("isLinkLocalUnicast", is_link_local_unicast),
        ("isGlobalUnicast", is_global_unicast),
    ] {
        e(env.add_member_overload(name, &format!("ip_{name}"), i.to_owned(), vec![], f))?;
    }
    let c = CIDR_TYPE.to_owned();
    e(env.add_overload("cidr", "string_to_cidr", vec![s.to_owned()], cidr))?;
    e(env.add_overload("isCIDR", "is_cidr", vec![s.to_owned()], is_cidr))?;
    e(env.add_member_overload(
        "prefixLength",
        "cidr_prefix_length",
        c.to_owned(),
        vec![],
        prefix_length,
    ))?;
    e(env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_ip",
        c.to_owned(),
        vec![i.to_owned()],
        contains_ip,
    ))?;
    e(env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_string",
        c.to_owned(),
        vec![s.to_owned()],
        contains_ip,
    ))?;
    e(env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr_cidr",
        c.to_owned(),
        vec![c.to_owned()],
        contains_cidr,
    ))?;
    e(env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr_string",
        c.to_owned(),
        vec![s.to_owned()],
        contains_cidr,
    ))?;
    e(env.add_member_overload("masked", "cidr_masked", c, vec![], masked))?;
    // lists
    e(env.add_member_overload("isSorted", "list_is_sorted", l.to_owned(), vec![], is_sorted))?;
    e(env.add_member_overload("sum", "list_sum", l.to_owned(), vec![], sum))?;
    e(env.add_member_overload("min", "list_min", l.to_owned(), vec![], min))?;
    e(env.add_member_overload("max", "list_max", l, vec![], max))?;
    // quantities
    let qt = QUANTITY_TYPE.to_owned();
    e(env.add_overload("quantity", "string_to_quantity", vec![s.to_owned()], quantity))?;
    e(env.add_overload("isQuantity", "is_quantity_string", vec![s.to_owned()], is_quantity))?;
    for (name, f) in [
        ("sign", sign as cel::common::functions::Function),
        ("isInteger", is_integer),
        ("asInteger", as_integer),
        ("asApproximateFloat", as_approximate_float),
    ] {
        e(env.add_member_overload(name, &format!("quantity_{name}"), qt.to_owned(), vec![], f))?;
    }
    for (name, f) in [
        ("add", q_add as cel::common::functions::Function),
        ("sub", q_sub),
        ("isGreaterThan", is_greater_than),
        ("isLessThan", is_less_than),
        ("compareTo", compare_to),
    ] {
        e(env.add_member_overload(
            name,
            &format!("quantity_{name}"),
            qt.to_owned(),
            vec![dyn_.to_owned()],
            f,
        ))?;
    }
    // formats
    e(env.add_overload("format.named", "format_named", vec![s.to_owned()], format_named))?;
    for (name, f) in [
        (
            "format.dns1123Label",
            f_dns1123_label as cel::common::functions::Function,
        ),
        ("format.dns1123Subdomain", f_dns1123_subdomain),
        ("format.dns1035Label", f_dns1035_label),
        ("format.qualifiedName", f_qualified_name),
        ("format.labelValue", f_label_value),
        ("format.uri", f_uri),
        ("format.uuid", f_uuid),
        ("format.byte", f_byte),
        ("format.date", f_date),
        ("format.datetime", f_datetime),
    ] {
        e(env.add_overload(name, &name.replace('.', "_"), vec![], f))?;
    }
    e(env.add_member_overload("validate", "format_validate", FORMAT_TYPE.to_owned(), vec![s], validate))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_as_go_parse_request_uri() {
        let u = parse_url("https://bucket.s3.amazonaws.com:443/a%20b/snapshot.db?X-Amz-Date=1&a=2").expect("valid");
        assert_eq!(u.scheme, "https");
        assert_eq!(hostname(&u.host), "bucket.s3.amazonaws.com");
        assert_eq!(port(&u.host), "443");
        assert_eq!(u.path, "/a%20b/snapshot.db");
        assert!(parse_url("s3://bucket/key").is_ok());
        assert!(parse_url("/absolute/path").is_ok());
        assert!(parse_url("relative/path").is_err());
        assert!(parse_url("").is_err());
        assert!(parse_url("https://bad host/").is_err());
        assert!(parse_url("https://a/%zz").is_err());
        assert_eq!(port("[::1]:6443"), "6443");
        assert_eq!(hostname("[::1]:6443"), "::1");
    }

    #[test]
    fn quantities_compare_exactly() {
        let gi = parse_quantity("1Gi").expect("valid");
        let g = parse_quantity("1G").expect("valid");
        assert_eq!(gi.cmp(&g), Ordering::Greater);
        assert_eq!(parse_quantity("1500m").expect("valid").as_integer(), None);
        assert_eq!(
            parse_quantity("8Gi").expect("valid").as_integer(),
            Some(8 * 1024 * 1024 * 1024)
        );
        assert_eq!(parse_quantity("1e3").expect("valid").as_integer(), Some(1000));
        assert!(parse_quantity("8 Gi").is_err());
        assert!(parse_quantity("Gi").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h30m"), Some(chrono::Duration::minutes(90)));
        assert_eq!(parse_go_duration("-300ms"), Some(chrono::Duration::milliseconds(-300)));
        assert_eq!(parse_go_duration("1.5s"), Some(chrono::Duration::milliseconds(1500)));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("1d"), None);
    }

    #[test]
    fn cidrs_follow_netip() {
        assert_eq!(parse_cidr("10.0.0.0/8").expect("valid").1, 8);
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("fe80::1%eth0/64").is_err());
        assert!(parse_ip("::ffff:10.0.0.1").is_err());
        let c = parse_cidr("10.0.0.0/8").expect("valid");
        assert!(contains(&c, "10.9.8.7".parse().expect("ip")));
        assert!(!contains(&c, "11.0.0.1".parse().expect("ip")));
    }
}

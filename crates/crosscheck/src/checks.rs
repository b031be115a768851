//! The checks: from the night's aggregates to findings with evidence. Pure functions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use serde_json::{json, Value};

use doudi_model::{mask_name, Household, Member, Money};

use crate::aggregate::{Partial, HUKOU_BIRTH_DIFFERS, HUKOU_NAME_DIFFERS, HUKOU_SEEN};
use crate::config::CheckConfig;
use crate::finding::{Check, Finding, CATEGORY};
use crate::index::Index;
use crate::snapshot::Month;

pub(crate) struct Judge<'a> {
    pub index: &'a Index<'a>,
    pub cfg: &'a CheckConfig,
    pub as_of: NaiveDate,
    pub wage_window: (Month, u32),
    pub ran: &'a BTreeSet<Check>,
}

fn yuan(m: Money) -> String {
    m.to_string()
}

fn months_json(ms: &[Month]) -> Value {
    Value::Array(ms.iter().map(|m| Value::String(m.to_string())).collect())
}

/// How a finding's words name a member: masked name, masked ID number, member id.
fn named(m: &Member) -> (String, String, &str) {
    (mask_name(&m.name), m.id_number.masked(), &m.member_id)
}

fn who(m: &Member) -> Value {
    json!({
        "member_id": m.member_id,
        "name": mask_name(&m.name),
        "id_number": m.id_number.masked(),
    })
}

/// One check over the aggregated rows, adding its findings.
type RunCheck<'a> = fn(&Judge<'a>, &Partial, &mut Vec<Finding>);

impl Judge<'_> {
    fn finding(
        &self,
        check: Check,
        h: &Household,
        member: Option<&Member>,
        amount: Money,
        evidence: Value,
        (summary_zh, summary_en): (String, String),
    ) -> Finding {
        let member_id = member.map(|m| m.member_id.clone());
        Finding {
            key: check.key(&h.household_id, member_id.as_deref()),
            check,
            household_id: h.household_id.clone(),
            member_id,
            region_code: h.region_code.clone(),
            category: CATEGORY.to_string(),
            household_category: h.category,
            amount_at_stake: amount,
            evidence,
            summary_zh,
            summary_en,
            as_of: self.as_of,
            deadline: self
                .as_of
                .checked_add_days(Days::new(u64::from(self.cfg.deadline_days)))
                .unwrap_or(self.as_of),
        }
    }

    /// A year of the household's benefit: what paying an ineligible household costs.
    fn year_of_benefit(h: &Household) -> Money {
        h.monthly_benefit.times(12)
    }

    /// A finding that the household may not be eligible: it costs a year of its benefit.
    fn eligibility(
        &self,
        check: Check,
        h: &Household,
        ev: Value,
        words: (String, String),
    ) -> Finding {
        self.finding(check, h, None, Self::year_of_benefit(h), ev, words)
    }

    /// Every check that ran, on up to `threads` threads: the checks (and slices of the
    /// register's members for the hukou checks) are shared out, and their findings put together
    /// in the same order as one thread would find them.
    pub fn run(&self, p: &Partial, threads: usize) -> Vec<Finding> {
        let ran = |c: Check| self.ran.contains(&c);
        let checks: [(Check, RunCheck); 7] = [
            (Check::DeceasedStillPaid, Self::deceased),
            (Check::NoLivingMember, Self::no_living),
            (Check::DisqualifyingVehicle, Self::vehicles),
            (Check::DisqualifyingProperty, Self::properties),
            (Check::DisqualifyingCompany, Self::companies),
            (Check::IncomeAboveLine, Self::income),
            (Check::DuplicateEnrolment, Self::duplicates),
        ];
        enum Task {
            Check(usize),
            Hukou(std::ops::Range<usize>),
        }
        let mut tasks: Vec<Task> = Vec::new();
        for (i, (check, _)) in checks.iter().enumerate() {
            if ran(*check) {
                tasks.push(Task::Check(i));
            }
        }
        if ran(Check::IdUnknownToHukou) || ran(Check::HukouMismatch) {
            // slices small enough to even out the threads' work
            let n = p.hukou.len();
            let parts = if threads > 1 { 4 * threads } else { 1 };
            let step = n.div_ceil(parts).max(1);
            let mut start = 0;
            loop {
                let end = (start + step).min(n);
                tasks.push(Task::Hukou(start..end));
                if end >= n {
                    break;
                }
                start = end;
            }
        }
        let work = |t: &Task| {
            let mut out = Vec::new();
            match t {
                Task::Check(i) => (checks[*i].1)(self, p, &mut out),
                Task::Hukou(r) => self.hukou(p, r.clone(), &mut out),
            }
            out
        };
        let mut parts: Vec<Vec<Finding>> = Vec::with_capacity(tasks.len());
        let threads = threads.clamp(1, tasks.len().max(1));
        if threads == 1 {
            parts.extend(tasks.iter().map(work));
        } else {
            let next = std::sync::atomic::AtomicUsize::new(0);
            let done: Vec<std::sync::Mutex<Vec<Finding>>> =
                tasks.iter().map(|_| Default::default()).collect();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(t) = tasks.get(i) else { return };
                        let found = work(t);
                        if let Ok(mut d) = done[i].lock() {
                            *d = found;
                        }
                    });
                }
            });
            parts.extend(done.into_iter().map(|d| d.into_inner().unwrap_or_default()));
        }
        let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
        for part in parts {
            out.extend(part);
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out.dedup_by(|a, b| a.key == b.key);
        out
    }

    fn deceased(&self, p: &Partial, out: &mut Vec<Finding>) {
        for (&m, death) in &p.deaths {
            let (h, mem) = self.index.member(m);
            let paid = p.overpaid.get(&m);
            if h.monthly_benefit == Money::ZERO && paid.is_none() {
                continue;
            }
            let (months, amount) = paid
                .map(|x| (x.months.as_slice(), x.amount))
                .unwrap_or((&[], Money::ZERO));
            let ev = json!({
                "member": who(mem),
                "death_date": death.date,
                "death_record_id": death.record_id,
                "household_monthly_benefit_fen": h.monthly_benefit,
                "months_paid_after_death": months_json(months),
                "overpaid_fen": amount,
            });
            let zh = format!(
                "成员{}（{}）已于 {} 登记死亡，仍在保障家庭中；死亡后发放 {} 个月，共 {} 元。",
                mask_name(&mem.name),
                mem.id_number.masked(),
                death.date,
                months.len(),
                yuan(amount)
            );
            let en = format!(
                "Member {} registered dead on {}, still in a paid household; paid for {} month(s) \
                 after death, {} yuan in all.",
                mem.member_id,
                death.date,
                months.len(),
                yuan(amount)
            );
            out.push(self.finding(Check::DeceasedStillPaid, h, Some(mem), amount, ev, (zh, en)));
        }
    }

    fn no_living(&self, p: &Partial, out: &mut Vec<Finding>) {
        let mut dead_by_household: BTreeMap<u32, u32> = BTreeMap::new();
        for &m in p.deaths.keys() {
            *dead_by_household
                .entry(self.index.household_of(m))
                .or_default() += 1;
        }
        for (hi, dead) in dead_by_household {
            let h = &self.index.households[hi as usize];
            if (dead as usize) < h.members.len() {
                continue;
            }
            let members: Vec<Value> = self
                .index
                .members_of(hi)
                .map(|m| {
                    let (_, mem) = self.index.member(m);
                    let d = p.deaths.get(&m).map(|d| d.date);
                    json!({"member": who(mem), "death_date": d})
                })
                .collect();
            let last = self
                .index
                .members_of(hi)
                .filter_map(|m| p.deaths.get(&m).map(|d| d.date))
                .max()
                .unwrap_or(self.as_of);
            let paid = p.orphan_paid.get(&hi);
            let (months, amount) = paid
                .map(|x| (x.months.as_slice(), x.amount))
                .unwrap_or((&[], Money::ZERO));
            let ev = json!({
                "members": members,
                "last_death_date": last,
                "household_monthly_benefit_fen": h.monthly_benefit,
                "months_paid_after_last_death": months_json(months),
                "paid_after_last_death_fen": amount,
            });
            let zh = format!(
                "家庭全部 {} 名成员均已登记死亡（最后一人于 {}），此后仍发放 {} 个月，共 {} 元；应核实并停发。",
                h.members.len(),
                last,
                months.len(),
                yuan(amount)
            );
            let en = format!(
                "All {} member(s) of the household are registered dead (the last on {}); paid for \
                 {} month(s) since, {} yuan in all.",
                h.members.len(),
                last,
                months.len(),
                yuan(amount)
            );
            out.push(self.finding(Check::NoLivingMember, h, None, amount, ev, (zh, en)));
        }
    }

    /// Evidence rows by household: for each member in order, one row per item (items sorted),
    /// made by `row` from the member (as [`who`] shows them) and the item.
    fn rows_by_household<T: Clone + Ord>(
        &self,
        per_member: &BTreeMap<u32, Vec<T>>,
        row: impl Fn(Value, &T) -> Value,
    ) -> BTreeMap<u32, Vec<Value>> {
        let mut by_household: BTreeMap<u32, Vec<Value>> = BTreeMap::new();
        for (&m, items) in per_member {
            let (_, mem) = self.index.member(m);
            let mut items = items.clone();
            items.sort();
            for it in &items {
                by_household
                    .entry(self.index.household_of(m))
                    .or_default()
                    .push(row(who(mem), it));
            }
        }
        by_household
    }

    fn vehicles(&self, p: &Partial, out: &mut Vec<Finding>) {
        let by_household = self.rows_by_household(&p.vehicles, |owner, v| {
            json!({
                "owner": owner,
                "plate": v.plate_masked,
                "vehicle_type": v.vehicle_type,
                "value_fen": v.value,
                "registered_on": v.registered_on,
            })
        });
        let rule = &self.cfg.vehicle;
        for (hi, vehicles) in by_household {
            let h = &self.index.households[hi as usize];
            let n = vehicles.len();
            let ev = json!({
                "vehicles": vehicles,
                "rule": {"max_value_fen": rule.max_value, "exempt_types": rule.exempt_types,
                         "always_disqualifying_types": rule.always_disqualifying_types},
            });
            let zh = format!(
                "家庭成员名下有 {n} 辆超出规定的机动车（价值超过 {} 元或属禁止车型），需核查保障资格。",
                yuan(rule.max_value)
            );
            let en = format!(
                "Members own {n} vehicle(s) beyond the rule (value above {} yuan or a \
                 disqualifying type): review eligibility.",
                yuan(rule.max_value)
            );
            out.push(self.eligibility(Check::DisqualifyingVehicle, h, ev, (zh, en)));
        }
    }

    fn properties(&self, p: &Partial, out: &mut Vec<Finding>) {
        let rule = &self.cfg.property;
        let mut by_household: BTreeMap<u32, Vec<(u32, &crate::aggregate::PropertyItem)>> =
            BTreeMap::new();
        for (&m, items) in &p.properties {
            for it in items {
                by_household
                    .entry(self.index.household_of(m))
                    .or_default()
                    .push((m, it));
            }
        }
        for (hi, mut items) in by_household {
            items.sort_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(&b.0)));
            let homes: BTreeSet<u64> = items
                .iter()
                .filter(|(_, it)| rule.counts_as_home(it.usage))
                .map(|(_, it)| it.certificate_key)
                .collect();
            let other = items
                .iter()
                .filter(|(_, it)| rule.disqualifies_alone(it.usage))
                .count();
            if homes.len() as u32 <= rule.max_homes && other == 0 {
                continue;
            }
            let h = &self.index.households[hi as usize];
            let list: Vec<Value> = items
                .iter()
                .map(|(m, it)| {
                    let (_, mem) = self.index.member(*m);
                    json!({
                        "owner": who(mem),
                        "certificate_no": it.certificate_masked,
                        "usage": it.usage,
                        "area_m2": it.area_m2,
                        "value_fen": it.value,
                        "registered_on": it.registered_on,
                    })
                })
                .collect();
            let ev = json!({
                "homes": homes.len(),
                "non_residential": other,
                "properties": list,
                "rule": {"max_homes": rule.max_homes,
                         "non_residential_disqualifies": rule.non_residential_disqualifies},
            });
            let zh = format!(
                "家庭名下住房 {} 套（规定不超过 {} 套），非住宅房产 {} 处，需核查保障资格。",
                homes.len(),
                rule.max_homes,
                other
            );
            let en = format!(
                "The household owns {} home(s) (at most {} allowed) and {} non-residential \
                 propert(ies): review eligibility.",
                homes.len(),
                rule.max_homes,
                other
            );
            out.push(self.eligibility(Check::DisqualifyingProperty, h, ev, (zh, en)));
        }
    }

    fn companies(&self, p: &Partial, out: &mut Vec<Finding>) {
        let rule = &self.cfg.company;
        let by_household = self.rows_by_household(&p.companies, |person, c| {
            json!({
                "person": person,
                "credit_code": c.credit_code,
                "company_name": c.company_name,
                "role": c.role,
                "registered_capital_fen": c.registered_capital,
            })
        });
        for (hi, companies) in by_household {
            let h = &self.index.households[hi as usize];
            let n = companies.len();
            let ev = json!({
                "companies": companies,
                "rule": {"legal_representative_disqualifies": rule.legal_representative_disqualifies,
                         "max_registered_capital_fen": rule.max_registered_capital},
            });
            let zh = format!(
                "家庭成员在 {n} 家存续企业中担任法定代表人或出资（注册资本超过 {} 元），需核查保障资格。",
                yuan(rule.max_registered_capital)
            );
            let en = format!(
                "Members hold {n} role(s) in active companies (legal representative, or capital \
                 above {} yuan): review eligibility.",
                yuan(rule.max_registered_capital)
            );
            out.push(self.eligibility(Check::DisqualifyingCompany, h, ev, (zh, en)));
        }
    }

    fn income(&self, p: &Partial, out: &mut Vec<Finding>) {
        let rule = &self.cfg.income;
        let (first, n) = self.wage_window;
        for (&hi, wages) in &p.wages {
            let h = &self.index.households[hi as usize];
            if !rule.categories.contains(&h.category) || h.members.is_empty() {
                continue;
            }
            let size = h.members.len() as i64;
            let line = rule.line.for_household(&h.region_code, h.area);
            let per_capita: Vec<Money> = wages.iter().map(|w| Money::from_fen(*w / size)).collect();
            if per_capita.len() != n as usize || per_capita.iter().any(|pc| *pc <= line) {
                continue;
            }
            // The grace period runs from the month the review opens: the same for every night
            // of that month, so a re-run does not move it.
            let grace_end = Month::of(self.as_of)
                .plus(rule.grace_months as i32)
                .first_day();
            let months: Vec<Value> = (0..n)
                .map(|k| {
                    json!({
                        "month": first.plus(k as i32).to_string(),
                        "income_fen": wages[k as usize],
                        "per_capita_fen": per_capita[k as usize],
                    })
                })
                .collect();
            let amount = h.monthly_benefit.times(i64::from(rule.grace_months));
            let ev = json!({
                "line_fen": line,
                "members": size,
                "months": months,
                "grace_months": rule.grace_months,
                "grace_period_ends": grace_end,
                "automatic_cut": false,
            });
            let zh = format!(
                "家庭人均工资收入连续 {n} 个月（{} 至 {}）高于保障标准 {} 元；按渐退办法复核，渐退期至 {}，不自动停发。",
                first,
                first.plus(n as i32 - 1),
                yuan(line),
                grace_end
            );
            let en = format!(
                "Per-capita wage income above the line of {} yuan for {n} months in a row ({} to \
                 {}): phase-out review, grace period until {}; never an automatic cut.",
                yuan(line),
                first,
                first.plus(n as i32 - 1),
                grace_end
            );
            out.push(self.finding(Check::IncomeAboveLine, h, None, amount, ev, (zh, en)));
        }
    }

    fn duplicates(&self, p: &Partial, out: &mut Vec<Finding>) {
        // Per member: other enrolments (payments under another household number, and the
        // register's own repeats of the ID number).
        let mut subjects: BTreeMap<u32, (Vec<Value>, Money)> = BTreeMap::new();
        for (&m, by_hh) in &p.foreign {
            let (h, _) = self.index.member(m);
            let e = subjects.entry(m).or_default();
            for (other, f) in by_hh {
                let kind = if f.region.county() == h.region_code.county() {
                    "two_households"
                } else {
                    "two_localities"
                };
                e.0.push(json!({
                    "kind": kind,
                    "source": "payments",
                    "household_id": other,
                    "region_code": f.region,
                    "category": f.category,
                    "months": months_json(&f.paid.months),
                    "amount_fen": f.paid.amount,
                }));
                e.1 += f.paid.amount;
            }
        }
        for &(a, b) in &self.index.duplicates {
            for (subject, other) in [(a, b), (b, a)] {
                let (oh, om) = self.index.member(other);
                let (h, _) = self.index.member(subject);
                let kind = if oh.region_code.county() == h.region_code.county() {
                    "two_households"
                } else {
                    "two_localities"
                };
                subjects.entry(subject).or_default().0.push(json!({
                    "kind": kind,
                    "source": "register",
                    "household_id": oh.household_id,
                    "member_id": om.member_id,
                    "region_code": oh.region_code,
                    "category": oh.category,
                }));
            }
        }
        for (m, (others, amount)) in subjects {
            let (h, mem) = self.index.member(m);
            let n = others.len();
            let ev = json!({"member": who(mem), "other_enrolments": others});
            let zh = format!(
                "成员{}（{}）同时在另外 {n} 个家庭或地区享受保障，另处发放共 {} 元。",
                mask_name(&mem.name),
                mem.id_number.masked(),
                yuan(amount)
            );
            let en = format!(
                "Member {} is also enrolled in {n} other household(s) or locality(ies); {} yuan \
                 paid there.",
                mem.member_id,
                yuan(amount)
            );
            out.push(self.finding(
                Check::DuplicateEnrolment,
                h,
                Some(mem),
                amount,
                ev,
                (zh, en),
            ));
        }
    }

    /// The hukou checks of the members in `members` (register order).
    fn hukou(&self, p: &Partial, members: std::ops::Range<usize>, out: &mut Vec<Finding>) {
        if p.hukou.len() != self.index.members.len() {
            return;
        }
        let start = members.start;
        for (m, flags) in p.hukou[members].iter().enumerate() {
            let m = (start + m) as u32;
            let (h, mem) = self.index.member(m);
            let share = h
                .monthly_benefit
                .per(h.members.len().max(1) as i64)
                .times(12);
            if flags & HUKOU_SEEN == 0 {
                if !self.ran.contains(&Check::IdUnknownToHukou) {
                    continue;
                }
                let ev = json!({"member": who(mem)});
                let (name, id, member) = named(mem);
                let zh = format!("成员{name}的身份证号（{id}）在户籍库中查无此人，需核实身份。");
                let en = format!(
                    "Member {member}'s ID number is not on the hukou roll: verify identity."
                );
                out.push(self.finding(Check::IdUnknownToHukou, h, Some(mem), share, ev, (zh, en)));
            } else if flags & (HUKOU_NAME_DIFFERS | HUKOU_BIRTH_DIFFERS) != 0 {
                if !self.ran.contains(&Check::HukouMismatch) {
                    continue;
                }
                let diff = p.hukou_diff.get(&m);
                let name_differs = flags & HUKOU_NAME_DIFFERS != 0;
                let birth_differs = flags & HUKOU_BIRTH_DIFFERS != 0;
                let ev = json!({
                    "member": who(mem),
                    "name_differs": name_differs,
                    "hukou_name": diff.map(|d| d.name_masked.clone()),
                    "birth_date_differs": birth_differs,
                    "register_birth_date": mem.birth_date,
                    "hukou_birth_date": diff.map(|d| d.birth_date),
                });
                let what_zh = match (name_differs, birth_differs) {
                    (true, true) => "姓名和出生日期",
                    (true, false) => "姓名",
                    _ => "出生日期",
                };
                let what_en = match (name_differs, birth_differs) {
                    (true, true) => "name and birth date",
                    (true, false) => "name",
                    _ => "birth date",
                };
                let (name, id, member) = named(mem);
                let zh = format!("成员{name}（{id}）的{what_zh}与户籍登记不一致，需核实身份。");
                let en = format!(
                    "Member {member}'s {what_en} disagrees with the hukou roll: verify identity."
                );
                out.push(self.finding(Check::HukouMismatch, h, Some(mem), share, ev, (zh, en)));
            }
        }
    }
}

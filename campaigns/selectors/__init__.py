"""Reads for campaigns: matching customers, follow-up work lists, effectiveness and dashboard figures.

Every list a page shows is built from a fixed number of queries whatever the number of rows
(aggregates grouped in the database, related rows joined or prefetched), so the staff pages stay
within their time budget with 100,000 customers and 10,000 targets.

* :mod:`.access`: who is staff, who may be assigned, the campaigns and targets an actor sees;
* :mod:`.matching`: latest predictions, the candidates of a campaign's target rule;
* :mod:`.effectiveness`: treatment against control, per assignee, recent campaigns' results;
* :mod:`.audience`: whom an enrolment would take, its save rate and projection;
* :mod:`.follow_ups`: the follow-up list, its filters, sorts and saved views;
* :mod:`.customer`: a customer's overview and timeline;
* :mod:`.dashboard`: risk levels, new high risk per day, the population snapshot, open work.
"""

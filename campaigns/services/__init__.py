"""Writes for campaigns: create, enrol, close, follow-up updates, assignment and outcomes.

Every state change locks what it changes, changes it and writes its audit entries in one
transaction. Services raise CampaignError with per-field messages for anything a caller can fix;
the API exception handler turns it (an InputError) into a 400, the staff pages into form errors.

* :mod:`.common`: ``CampaignError``, ``NotVisible``, the campaign lock, the bulk audit;
* :mod:`.spec`: ``CampaignSpec`` and the checks of a campaign's rule, filters and playbook;
* :mod:`.lifecycle`: ``campaign_create``, ``campaign_enrol``, ``campaign_close``;
* :mod:`.follow_ups`: target updates, assignment, playbook steps, bulk changes, saved views;
* :mod:`.outcomes`: ``campaign_targets_apply_outcomes``.
"""

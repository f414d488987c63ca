# adapter written by the lead

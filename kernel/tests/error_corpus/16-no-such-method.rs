let mut v = vec![1];
v.pusj(2);

print("cocomem")
